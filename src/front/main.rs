//! `baton-edit`: baton's editor mode, for `$VISUAL`. A prompt that baton would hand to the real
//! editor unchanged (no `@agent` directive, `$BATON_EDITOR` set) is handed to it from here, by
//! `exec`, without loading a C library, the Rust runtime or baton's state: about a twentieth of
//! the time baton takes to start. Everything else, and anything this program is unsure of, is
//! handed to `baton` itself, the binary beside it, with the same arguments and the same PID, so
//! `baton-edit ARGS` does what `baton ARGS` does.
//!
//! It decides by the rules baton decides by (`editor_rules.rs`, compiled here too); what it
//! repeats of baton is the lookup of `$BATON_EDITOR` on `PATH` (`editor::real_editor`), and
//! only in the plain case: an ASCII value, a program that is an absolute path or a name found in
//! absolute `PATH` folders. It never writes a file.
//!
//! On targets other than Linux on x86-64 it only execs `baton` (and so it is built for `cargo
//! clippy --all-targets`'s test pass, where the standard library is linked in).

#![cfg_attr(
    all(target_os = "linux", target_arch = "x86_64", not(test)),
    no_std,
    no_main
)]

#[cfg(all(target_os = "linux", target_arch = "x86_64", not(test)))]
#[path = "../editor_rules.rs"]
mod editor_rules;
#[cfg(all(target_os = "linux", target_arch = "x86_64", not(test)))]
mod mem;
#[cfg(all(target_os = "linux", target_arch = "x86_64", not(test)))]
mod sys;

#[cfg(all(target_os = "linux", target_arch = "x86_64", not(test)))]
mod fast {
    use super::editor_rules;
    use super::sys::{self, CPath};

    /// What baton reads at most of a prompt file (`editor::MAX_PROMPT_FILE`); past it, baton says so.
    const MAX_PROMPT_FILE: u64 = 16 << 20;
    /// The most arguments handed to the editor from here; more go through baton.
    const MAX_ARGS: usize = 256;

    // The entry point: the kernel's stack holds argc, the arguments, a NULL, the environment and
    // a NULL. Aligns the stack for the call, as the ABI wants.
    core::arch::global_asm!(
        ".globl _start",
        "_start:",
        "mov rdi, rsp",
        "and rsp, -16",
        "call {start}",
        start = sym start,
    );

    extern "C" fn start(sp: *mut usize) -> ! {
        // SAFETY: `sp` is the stack the kernel laid out: argc, then argc pointers and a NULL,
        // then the environment's pointers and a NULL; all of it lives as long as the process.
        let (argv, envp) = unsafe {
            let argc = *sp;
            let argv = sp.add(1) as *mut *const u8;
            (
                core::slice::from_raw_parts_mut(argv, argc + 1),
                argv.add(argc + 1) as *const *const u8,
            )
        };
        sys::open_closed_standard_fds();
        let env = Env(envp);
        let me = Me {
            exec_name: exec_name(envp),
        };
        let args = argv.get(1..argv.len().saturating_sub(1)).unwrap_or(&[]);
        if passes_through(args, &env) {
            if let Some(editor) = Editor::resolve(&env, &me) {
                editor.exec(args, envp);
            }
        }
        exec_baton(&me, argv, envp)
    }

    /// The name this program was started by (`AT_EXECFN`, in the auxiliary vector that follows
    /// the environment's NULL).
    fn exec_name(envp: *const *const u8) -> Option<&'static [u8]> {
        const AT_NULL: usize = 0;
        const AT_EXECFN: usize = 31;
        // SAFETY: the kernel's layout: after the environment's NULL come (type, value) pairs
        // ending with AT_NULL; AT_EXECFN's value is a NUL-terminated string.
        unsafe {
            let mut p = envp;
            while !(*p).is_null() {
                p = p.add(1);
            }
            let mut aux = p.add(1) as *const usize;
            loop {
                match *aux {
                    AT_NULL => return None,
                    AT_EXECFN => return Some(c_str(*aux.add(1) as *const u8)),
                    _ => aux = aux.add(2),
                }
            }
        }
    }

    /// Where this program is.
    struct Me {
        exec_name: Option<&'static [u8]>,
    }

    impl Me {
        fn path(&self) -> Option<CPath> {
            sys::own_path(self.exec_name)
        }

        /// The program `name` beside this one.
        fn beside(&self, name: &[u8]) -> Option<CPath> {
            let me = self.path()?;
            match me.bytes().iter().rposition(|&b| b == b'/') {
                Some(at) => CPath::of(&[&me.bytes()[..=at], name]),
                None => CPath::of(&[b"./", name]),
            }
        }

        /// Whether `path` is this program or the baton beside it: never an editor.
        fn is_baton(&self, path: &CPath) -> bool {
            let Ok(it) = sys::stat(path) else {
                return true;
            };
            [self.path(), self.beside(b"baton")]
                .iter()
                .flatten()
                .filter_map(|p| sys::stat(p).ok())
                .any(|id| id.same(&it))
        }
    }

    /// The bytes of a NUL-terminated string the kernel gave.
    fn c_str<'a>(p: *const u8) -> &'a [u8] {
        // SAFETY: `p` is one of the kernel's argument or environment strings: NUL-terminated
        // and alive for the whole process.
        unsafe { core::ffi::CStr::from_ptr(p.cast()).to_bytes() }
    }

    struct Env(*const *const u8);

    impl Env {
        /// The value of variable `name`, if it is set.
        fn get(&self, name: &[u8]) -> Option<&'static [u8]> {
            let mut p = self.0;
            loop {
                // SAFETY: the environment's list ends with a NULL, which stops this walk.
                let entry = unsafe { *p };
                if entry.is_null() {
                    return None;
                }
                let entry = c_str(entry);
                if let Some(value) = entry
                    .strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(b"="))
                {
                    return Some(value);
                }
                // SAFETY: not past the NULL yet.
                p = unsafe { p.add(1) };
            }
        }
    }

    /// Whitespace as Rust's `str::split_whitespace` and `str::trim` take it, in ASCII.
    fn is_space(b: u8) -> bool {
        matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
    }

    fn is_blank(value: &[u8]) -> bool {
        value.iter().all(|&b| is_space(b))
    }

    /// Whether baton would pass this call through to the real editor (`editor::run`): an editor
    /// call whose file does not exist or holds no directive, or any editor call from inside an
    /// agent. `false` when baton would do anything else, or when it is not plain to tell.
    fn passes_through(args: &[*const u8], env: &Env) -> bool {
        // baton answers its completion requests first, and reads BATON_TIMEOUT (a bad one is
        // an error) before it looks at the file.
        if env.get(b"BATON_COMPLETE").is_some()
            || env.get(b"BATON_TIMEOUT").is_some_and(|v| !is_blank(v))
        {
            return false;
        }
        let Some(file) = editor_rules::sole_file(args.iter().map(|&a| c_str(a))) else {
            return false;
        };
        // A bare word is a file only if it exists: baton tells that from a command.
        if !editor_rules::looks_like_path(file) {
            return false;
        }
        if env.get(b"BATON_AGENT").is_some_and(|v| !v.is_empty()) {
            return true;
        }
        let Some(path) = CPath::of(&[file]) else {
            return false;
        };
        match sys::stat(&path) {
            Err(sys::ENOENT) => true,
            Ok(id) if id.regular && id.size <= MAX_PROMPT_FILE => match read_all(&path, id.size) {
                Some(text) => !editor_rules::may_route(editor_rules::prompt_region(text)),
                None => false,
            },
            _ => false,
        }
    }

    /// The whole file, expected to be `size` bytes; `None` if it cannot be read or has grown
    /// past `MAX_PROMPT_FILE`.
    fn read_all(path: &CPath, size: u64) -> Option<&'static [u8]> {
        let fd = sys::Fd::open(path).ok()?;
        // Still the regular file `stat` saw (not a FIFO put in its place since).
        if !fd.stat().is_ok_and(|id| id.regular) {
            return None;
        }
        // One byte more than expected, to see a file that grew since `stat`.
        let buf = sys::memory(size.min(MAX_PROMPT_FILE) as usize + 1)?;
        let mut len = 0;
        loop {
            match fd.read(&mut buf[len..]) {
                Ok(0) => return Some(&buf[..len]),
                Ok(n) => len += n,
                Err(_) => return None,
            }
            if len == buf.len() {
                return None;
            }
        }
    }

    /// `$BATON_EDITOR`, split into words, its program found.
    struct Editor {
        program: CPath,
        /// The value with each blank made a NUL: the words are NUL-terminated where they lie.
        words: CPath,
    }

    impl Editor {
        /// What `editor::real_editor` finds, when `$BATON_EDITOR` is set and plain.
        fn resolve(env: &Env, me: &Me) -> Option<Editor> {
            let value = env.get(b"BATON_EDITOR")?;
            if !value.is_ascii() || is_blank(value) {
                return None;
            }
            let mut words = CPath::of(&[value])?;
            let program = value.split(|&b| is_space(b)).find(|w| !w.is_empty())?;
            let program = if program.starts_with(b"/") {
                CPath::of(&[program]).filter(is_executable_file)?
            } else if program.contains(&b'/') {
                return None;
            } else {
                on_path(env, program)?
            };
            if me.is_baton(&program) {
                return None;
            }
            for b in words.bytes_mut() {
                if is_space(*b) {
                    *b = 0;
                }
            }
            Some(Editor { program, words })
        }

        /// Execs the editor: its program (as found), the rest of its words, then `args`.
        /// Returns if that failed; baton then tries, and says why.
        fn exec(&self, args: &[*const u8], envp: *const *const u8) {
            let mut argv = [core::ptr::null(); MAX_ARGS + 1];
            argv[0] = self.program.ptr();
            let mut n = 1;
            // The words lie NUL-separated in `words`; the first is the program, found above.
            let mut at = 0;
            let words = self.words.bytes().split(|&b| b == 0).filter_map(|w| {
                let start = at;
                at += w.len() + 1;
                (!w.is_empty()).then(|| self.words.ptr().wrapping_add(start))
            });
            for p in words.skip(1).chain(args.iter().copied()) {
                if n == MAX_ARGS {
                    return;
                }
                argv[n] = p;
                n += 1;
            }
            sys::default_sigpipe();
            sys::execve(&self.program, &argv[..=n], envp);
        }
    }

    fn is_executable_file(path: &CPath) -> bool {
        sys::stat(path).is_ok_and(|id| id.regular) && sys::executable(path)
    }

    /// The first executable file `name` in `$PATH`'s folders, as `which::which` finds it; `None`
    /// if there is none, or a folder of `PATH` is relative or empty (baton decides those).
    fn on_path(env: &Env, name: &[u8]) -> Option<CPath> {
        for dir in env.get(b"PATH")?.split(|&b| b == b':') {
            if !dir.starts_with(b"/") {
                return None;
            }
            let sep: &[u8] = if dir.ends_with(b"/") { b"" } else { b"/" };
            let candidate = CPath::of(&[dir, sep, name])?;
            if is_executable_file(&candidate) {
                return Some(candidate);
            }
        }
        None
    }

    /// Hands the whole call to `baton`, the program beside this one.
    fn exec_baton(me: &Me, argv: &mut [*const u8], envp: *const *const u8) -> ! {
        let Some(baton) = me.beside(b"baton") else {
            sys::write_stderr(b"baton-edit: cannot tell where it is installed\n");
            sys::exit(2)
        };
        // Called with no arguments at all, the list is only its NULL.
        let mut alone = [baton.ptr(), core::ptr::null()];
        let argv = match argv {
            [first, _, ..] => {
                *first = baton.ptr();
                argv
            }
            _ => &mut alone[..],
        };
        let err = sys::execve(&baton, argv, envp);
        let mut code = [0u8; 8];
        sys::write_stderr(b"baton-edit: running ");
        sys::write_stderr(baton.bytes());
        sys::write_stderr(b": os error ");
        sys::write_stderr(decimal(err, &mut code));
        sys::write_stderr(b" (baton-edit hands every prompt it does not pass through to the baton installed beside it)\n");
        sys::exit(2)
    }

    fn decimal(mut n: isize, buf: &mut [u8; 8]) -> &[u8] {
        let mut at = buf.len();
        loop {
            at -= 1;
            buf[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 || at == 0 {
                return &buf[at..];
            }
        }
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        sys::write_stderr(b"baton-edit: internal error\n");
        sys::exit(2)
    }

    // The core library's unwinding code names this symbol; nothing here unwinds (panics exit).
    #[no_mangle]
    extern "C" fn rust_eh_personality() {}
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64", not(test))))]
fn main() {
    use std::os::unix::process::CommandExt;
    let baton = std::env::current_exe()
        .ok()
        .and_then(|me| Some(me.parent()?.join("baton")))
        .unwrap_or_else(|| "baton".into());
    let err = std::process::Command::new(&baton)
        .args(std::env::args_os().skip(1))
        .exec();
    eprintln!("baton-edit: running {}: {err}", baton.display());
    std::process::exit(2);
}
