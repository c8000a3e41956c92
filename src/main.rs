//! The `baton` binary: everything is in the library; this maps its result to an exit code.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let code = match baton::run(args) {
        Ok(exit) => exit.code(),
        Err(failure) => {
            eprintln!("baton: {failure}");
            failure.exit.code()
        }
    };
    std::process::exit(code);
}
