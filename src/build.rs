//! Links libgcc's unwinder (`libgcc_eh.a`) into baton on GNU/Linux, so that no start of baton
//! loads `libgcc_s.so`: the standard library needs its unwinder only for backtraces (a panic
//! aborts), and loading the library, with its constructor asking the CPU its features, is
//! about a tenth of a start (bench/RESULTS.md). Where the archive is missing, nothing changes.
//!
//! And links `baton-edit` (src/front) on its own: static, with its own entry point and no C
//! library, on Linux on x86-64 (elsewhere it is an ordinary program).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=src/build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    front();
    let target = std::env::var("TARGET").unwrap_or_default();
    // A cross build keeps the default: the C compiler asked here is the host's.
    if !target.ends_with("-linux-gnu") || std::env::var("HOST").ok() != Some(target) {
        return;
    }
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut words = cc.split_whitespace();
    let found = Command::new(words.next().unwrap_or("cc"))
        .args(words)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|path| path.contains('/'));
    if let Some(archive) = found {
        // A compiler upgraded or removed later runs this again.
        println!("cargo:rerun-if-changed={archive}");
        // Not bundled into the library: the final link finds it where the C compiler does,
        // before the standard library's `-lgcc_s`, which `--as-needed` then drops.
        println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
        // For the test that no start loads it.
        println!("cargo:rustc-env=BATON_STATIC_UNWINDER=1");
    }
}

/// `baton-edit`'s link: no C library, no start files, a static executable at a fixed address
/// (its `_start` does not relocate itself).
fn front() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if os == "linux" && arch == "x86_64" {
        for arg in ["-nostartfiles", "-nostdlib", "-static", "-no-pie"] {
            println!("cargo:rustc-link-arg-bin=baton-edit={arg}");
        }
    }
}
