//! The `baton` binary: everything is in the library; this prints an error once and maps the
//! result to an exit code (`exit::code_of`).

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let code = match baton::run(args) {
        Ok(exit) => exit.code(),
        Err(err) => {
            eprintln!("baton: {err:#}");
            baton::exit::code_of(&err).code()
        }
    };
    std::process::exit(code);
}
