//! The file protocol is enough for an agent written in sh: `scripts/example-agent.sh`.

use std::process::{Command, Stdio};

use crate::util::*;

#[test]
fn the_example_shell_agent_speaks_the_protocol() {
    let env = Env::new();
    // Create the state folder with baton's checks, as a user would have it.
    env.run(["status"]).ok();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/example-agent.sh");
    let mut cmd = Command::new("sh");
    scrub(&mut cmd);
    let mut agent = cmd
        .arg(script)
        .arg("shouty")
        .env("BATON_HOME", &env.home)
        .stdin(Stdio::null())
        .spawn()
        .expect("starting the example agent");
    let lock = env.agent_dir("shouty").join("lock");
    wait_until("the example agent holds its lock", secs(10), || {
        runner_alive(&lock)
    });
    let out = env.run(["ask", "shouty", "hello from the protocol"]).ok();
    assert_eq!(out.stdout, "HELLO FROM THE PROTOCOL\n");
    // A second copy is refused, as with baton's own runner.
    let second = Command::new("sh")
        .arg(script)
        .arg("shouty")
        .env("BATON_HOME", &env.home)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(2));
    // Fan-out mixes it with a baton runner.
    env.start("sh1", &[]);
    let out = env.run(["ask", "shouty,sh1", "echo mixed"]).ok();
    assert_eq!(
        out.stdout,
        "==> shouty <==\nECHO MIXED\n==> sh1 <==\nmixed\n"
    );
    // Its death is noticed like any runner's.
    let _ = agent.kill();
    let _ = agent.wait();
    wait_until("the lock is free", secs(10), || !runner_alive(&lock));
    env.run(["ask", "shouty", "anyone?"]).expect(5);
}
