//! Starting a task's process the way `posix_spawn` does: the child borrows the runner's memory
//! (`clone` with `CLONE_VM | CLONE_VFORK`) until it execs, instead of copying it as `fork` does;
//! that copy, and the copy-on-write faults it leaves the runner, were 0.2 ms of every task of an
//! exec agent. `std::process::Command` spawns this way too, but not with a `pre_exec` hook, and
//! the one thing a driver's child needs that `posix_spawn` cannot give is SIGKILL when the runner
//! dies (`PR_SET_PDEATHSIG`). So this module is that spawn, with it.
//!
//! The child runs on a stack inside the runner's memory, made once by a `Spawner` and used by
//! each of its spawns in turn (a child is done with it when the clone returns), and does nothing
//! but system calls on data made ready before the clone: no allocation, no lock, no Rust
//! runtime.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::libc::{self, c_char, c_int, c_void};

/// What the task's process is: `program` (a path; no search is made) with `args`, exactly `env`,
/// in `cwd`, with `stdio` as its standard input, output and error.
pub struct TaskCommand<'a> {
    pub program: &'a str,
    pub args: &'a [String],
    pub env: Vec<(&'a OsStr, &'a OsStr)>,
    pub cwd: &'a Path,
    pub stdio: [OwnedFd; 3],
}

/// A started process, in a process group of its own (its pid is the group's id).
#[derive(Debug)]
pub struct Process {
    pid: libc::pid_t,
    status: Option<ExitStatus>,
}

impl Process {
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Its exit status if it has ended (reaping it), `None` while it runs.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.reap(libc::WNOHANG)
    }

    /// Waits for it to end and reaps it.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            match self.reap(0) {
                Ok(Some(status)) => return Ok(status),
                Ok(None) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn reap(&mut self, flags: c_int) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let mut raw: c_int = 0;
        // SAFETY: waitpid writes only to `raw`; the pid is our own child, not yet reaped.
        match unsafe { libc::waitpid(self.pid, &mut raw, flags) } {
            0 => Ok(None),
            -1 => Err(io::Error::last_os_error()),
            _ => {
                let status = ExitStatus::from_raw(raw);
                self.status = Some(status);
                Ok(Some(status))
            }
        }
    }
}

/// Everything the child reads, made ready by the parent. The pointers point into the parent's
/// `CString`s and vectors, which outlive the child's use of them: `CLONE_VFORK` keeps the parent
/// suspended until the child has exec'd or exited.
struct ChildArgs {
    path: *const c_char,
    argv: *const *const c_char,
    /// `/bin/sh PATH ARGS…`: run if `path` is not an executable format (a script without
    /// `#!`), as `execvp` and `posix_spawnp` do.
    sh_argv: *const *const c_char,
    envp: *const *const c_char,
    cwd: *const c_char,
    stdio: [RawFd; 3],
    parent: libc::pid_t,
    /// The errno of the step that failed; 0 if the child got as far as exec.
    error: AtomicI32,
}

/// What starts task processes: the child's stack and this process's pid, made once instead of
/// at every spawn (a mapping made and unmapped per task, and a `getpid`).
pub struct Spawner {
    stack: Stack,
    parent: libc::pid_t,
}

impl Spawner {
    pub fn new() -> io::Result<Spawner> {
        Ok(Spawner {
            stack: Stack::new()?,
            // SAFETY: getpid has no preconditions.
            parent: unsafe { libc::getpid() },
        })
    }

    /// Starts `cmd` (see `spawn`).
    pub fn spawn(&mut self, cmd: TaskCommand<'_>) -> io::Result<Process> {
        spawn(cmd, &mut self.stack, self.parent)
    }
}

/// Starts `cmd` on `stack`, for `parent` (this process): in its own process group, killed
/// (SIGKILL) when this process dies, with the default signal dispositions and an empty signal
/// mask. An error says why it could not start (the program missing or not executable, the
/// folder gone); nothing is left running then. `&mut` keeps the stack to one child at a time.
fn spawn(cmd: TaskCommand<'_>, stack: &mut Stack, parent: libc::pid_t) -> io::Result<Process> {
    let cstr = |b: &[u8]| {
        CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "nul byte found"))
    };
    let path = cstr(cmd.program.as_bytes())?;
    let mut argv_owned = vec![path.clone()];
    for a in cmd.args {
        argv_owned.push(cstr(a.as_bytes())?);
    }
    let mut env_owned = Vec::with_capacity(cmd.env.len());
    for (k, v) in &cmd.env {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        env_owned.push(cstr(&kv)?);
    }
    let cwd = cstr(cmd.cwd.as_os_str().as_bytes())?;
    let argv = null_terminated(&argv_owned);
    // The same arguments, after `/bin/sh` (a static string): no copy of them is made.
    let sh_argv: Vec<*const c_char> = std::iter::once(SH.as_ptr())
        .chain(argv.iter().copied())
        .collect();
    let envp = null_terminated(&env_owned);
    // The child dup2s these onto 0, 1 and 2: none may be one of those already.
    let [stdin, stdout, stderr] = cmd.stdio.map(above_stdio);
    let stdio = [stdin?, stdout?, stderr?];
    let args = ChildArgs {
        path: path.as_ptr(),
        argv: argv.as_ptr(),
        sh_argv: sh_argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: cwd.as_ptr(),
        stdio: [
            stdio[0].as_raw_fd(),
            stdio[1].as_raw_fd(),
            stdio[2].as_raw_fd(),
        ],
        parent,
        error: AtomicI32::new(0),
    };
    let top = stack.top();
    let pid = with_signals_blocked(|| {
        // SAFETY: `child` only reads `args` and makes async-signal-safe system calls (see its
        // comments); CLONE_VFORK keeps this thread, and so `args`, `stack` and the strings they
        // point into, alive and unmoved until the child has exec'd or exited.
        unsafe {
            libc::clone(
                child,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (&args as *const ChildArgs).cast_mut().cast(),
            )
        }
    });
    if pid == -1 {
        return Err(io::Error::last_os_error());
    }
    let mut process = Process { pid, status: None };
    match args.error.load(Ordering::SeqCst) {
        0 => Ok(process),
        errno => {
            // It exited without exec: reap it, and say why.
            let _ = process.wait();
            Err(io::Error::from_raw_os_error(errno))
        }
    }
}

/// The child's stack: small (the child makes a handful of system calls and no deep calls), with
/// an inaccessible page below it, so that running off its end faults instead of writing over
/// the runner's memory, which the child shares.
struct Stack {
    base: *mut c_void,
    len: usize,
}

impl Stack {
    const USABLE: usize = 32 * 1024;
    const GUARD: usize = 4096;

    fn new() -> io::Result<Stack> {
        let len = Self::USABLE + Self::GUARD;
        // SAFETY: a new private anonymous mapping, owned by the `Stack` from here on.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base, len };
        // SAFETY: the first page of the mapping just made.
        if unsafe { libc::mprotect(base, Self::GUARD, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// Where the stack starts: its end (it grows down), page-aligned, so 16-byte aligned as
    /// the ABI wants it.
    fn top(&self) -> *mut c_void {
        // SAFETY: one past the end of the mapping, which is not dereferenced.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping `new` made, used by no one once the child has exec'd or exited.
        unsafe {
            libc::munmap(self.base, self.len);
        }
    }
}

/// What runs a program that is not an executable format (a script without `#!`).
const SH: &std::ffi::CStr = c"/bin/sh";

/// `strings` as the null-terminated pointer array `execve` takes.
fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// `fd`, moved above the standard descriptors if it is one of them.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor, which we then own.
    match unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) } {
        -1 => Err(io::Error::last_os_error()),
        // SAFETY: a descriptor fcntl just made, owned by no one else.
        moved => Ok(unsafe { OwnedFd::from_raw_fd(moved) }),
    }
}

/// Runs `f` with every signal blocked in this thread, so that no handler of this process runs in
/// the child (which shares its memory) before the child has reset them.
fn with_signals_blocked<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: sigset_t is plain data; sigfillset and pthread_sigmask write only to the sets given.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut before: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut before);
        let out = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut());
        out
    }
}

/// The child, between `clone` and `execve`. Every call here is a system call's thin wrapper.
extern "C" fn child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's `ChildArgs`, alive while the parent is suspended.
    let args = unsafe { &*(arg as *const ChildArgs) };
    // SAFETY: each call below is async-signal-safe, reads only `args` and writes only the
    // child's own process state (and `args.error`, which the parent reads after the clone).
    unsafe {
        let fail = |args: &ChildArgs| -> c_int {
            args.error
                .store(*libc::__errno_location(), Ordering::SeqCst);
            libc::_exit(127)
        };
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            return fail(args);
        }
        // The runner died before the line above: nothing would kill this child then.
        if libc::getppid() != args.parent {
            libc::_exit(127);
        }
        if libc::setpgid(0, 0) != 0 {
            return fail(args);
        }
        for (target, &fd) in args.stdio.iter().enumerate() {
            if libc::dup2(fd, target as c_int) == -1 {
                return fail(args);
            }
        }
        if libc::chdir(args.cwd) != 0 {
            return fail(args);
        }
        // Every signal this process catches back to its default (exec would do it, but a
        // signal let in before exec must not run the parent's handler in the parent's memory),
        // and SIGPIPE too, which Rust's runtime ignores (as std::process does).
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        for sig in 1..=libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut now: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut now) != 0 {
                continue;
            }
            let caught = now.sa_sigaction != libc::SIG_DFL && now.sa_sigaction != libc::SIG_IGN;
            if caught || (sig == libc::SIGPIPE && now.sa_sigaction == libc::SIG_IGN) {
                libc::sigaction(sig, &default, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::execve(args.path, args.argv, args.envp);
        if *libc::__errno_location() == libc::ENOEXEC {
            libc::execve(SH.as_ptr(), args.sh_argv, args.envp);
        }
        fail(args)
    }
}
