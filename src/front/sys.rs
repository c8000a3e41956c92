//! The Linux system calls `baton-edit` makes, on x86-64, without a C library: each is one
//! `syscall` instruction, and returns the kernel's result or `Err(errno)`.

use core::arch::asm;

pub const ENOENT: isize = 2;
const EINTR: isize = 4;
const EBADF: isize = 9;

const READ: usize = 0;
const WRITE: usize = 1;
const CLOSE: usize = 3;
const MMAP: usize = 9;
const RT_SIGACTION: usize = 13;
const EXECVE: usize = 59;
const FCNTL: usize = 72;
const EXIT_GROUP: usize = 231;
const OPENAT: usize = 257;
const NEWFSTATAT: usize = 262;
const READLINKAT: usize = 267;
const FACCESSAT: usize = 269;

/// The `*at` calls' "relative to the working folder".
const AT_FDCWD: usize = -100isize as usize;
const AT_EMPTY_PATH: usize = 0x1000;
const O_RDONLY_NONBLOCK_CLOEXEC: usize = 0o2004000;
const O_RDWR: usize = 2;
const F_GETFD: usize = 1;
const X_OK: usize = 1;
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

/// # Safety
/// The arguments must be what system call `n` expects (valid pointers to buffers of the sizes
/// given, NUL-terminated paths); unused ones are ignored by the kernel.
unsafe fn syscall(n: usize, a: usize, b: usize, c: usize, d: usize) -> Result<usize, isize> {
    let ret: isize;
    // SAFETY: the caller passes what the call expects; the kernel clobbers rcx and r11 only.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b, in("rdx") c,
            in("r10") d, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    if (-4095..0).contains(&ret) {
        Err(-ret)
    } else {
        Ok(ret as usize)
    }
}

/// A path for the kernel: the bytes and a NUL, in a buffer of `PATH_MAX`.
pub struct CPath {
    buf: [u8; 4096],
    len: usize,
}

impl CPath {
    /// `parts` one after the other; `None` if they do not fit or hold a NUL.
    pub fn of(parts: &[&[u8]]) -> Option<CPath> {
        let mut path = CPath {
            buf: [0; 4096],
            len: 0,
        };
        for part in parts {
            let end = path.len + part.len();
            if end >= path.buf.len() || part.contains(&0) {
                return None;
            }
            path.buf[path.len..end].copy_from_slice(part);
            path.len = end;
        }
        Some(path)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    pub fn ptr(&self) -> *const u8 {
        self.buf.as_ptr()
    }
}

/// What `stat` tells of a file: which file it is, and whether it is a regular one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
    pub regular: bool,
    pub size: u64,
}

/// The kernel's `struct stat` on x86-64 (144 bytes).
#[repr(C)]
struct Stat {
    dev: u64,
    ino: u64,
    nlink: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    _pad: u32,
    rdev: u64,
    size: i64,
    _rest: [u64; 11],
}

/// `newfstatat(2)`: `path` (following links), or with `AT_EMPTY_PATH` the open file `dirfd`.
fn fstatat(dirfd: usize, path: *const u8, flags: usize) -> Result<FileId, isize> {
    let mut st = core::mem::MaybeUninit::<Stat>::zeroed();
    // SAFETY: a NUL-terminated path and a buffer the size of the kernel's `struct stat`.
    unsafe {
        syscall(
            NEWFSTATAT,
            dirfd,
            path as usize,
            st.as_mut_ptr() as usize,
            flags,
        )?
    };
    // SAFETY: zeroed, then filled by the kernel.
    let st = unsafe { st.assume_init() };
    Ok(FileId {
        dev: st.dev,
        ino: st.ino,
        regular: st.mode & S_IFMT == S_IFREG,
        size: st.size.max(0) as u64,
    })
}

/// `stat(2)`: follows links.
pub fn stat(path: &CPath) -> Result<FileId, isize> {
    fstatat(AT_FDCWD, path.ptr(), 0)
}

impl FileId {
    pub fn same(&self, other: &FileId) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }
}

/// Whether this process may execute `path` (`faccessat(2)` with `X_OK`).
pub fn executable(path: &CPath) -> bool {
    // SAFETY: a NUL-terminated path.
    unsafe { syscall(FACCESSAT, AT_FDCWD, path.ptr() as usize, X_OK, 0).is_ok() }
}

/// An open file, closed when dropped.
pub struct Fd(usize);

impl Fd {
    /// Opens `path` for reading; without waiting, should it have become a FIFO since it was
    /// looked at.
    pub fn open(path: &CPath) -> Result<Fd, isize> {
        // SAFETY: a NUL-terminated path.
        unsafe {
            syscall(
                OPENAT,
                AT_FDCWD,
                path.ptr() as usize,
                O_RDONLY_NONBLOCK_CLOEXEC,
                0,
            )
        }
        .map(Fd)
    }

    pub fn stat(&self) -> Result<FileId, isize> {
        fstatat(self.0, c"".as_ptr().cast(), AT_EMPTY_PATH)
    }

    pub fn read(&self, buf: &mut [u8]) -> Result<usize, isize> {
        loop {
            // SAFETY: the buffer is writable for its length.
            match unsafe { syscall(READ, self.0, buf.as_mut_ptr() as usize, buf.len(), 0) } {
                Err(EINTR) => continue,
                other => return other,
            }
        }
    }
}

/// Opens `/dev/null` on each of the standard descriptors that is closed, as the Rust runtime does
/// before `main` in baton: an editor never finds its own files on them.
pub fn open_closed_standard_fds() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only asks about the descriptor.
        if unsafe { syscall(FCNTL, fd, F_GETFD, 0, 0) } == Err(EBADF) {
            // The lowest free descriptor: this one, as the lower ones are open.
            // SAFETY: a NUL-terminated path.
            let _ = unsafe { syscall(OPENAT, AT_FDCWD, c"/dev/null".as_ptr() as usize, O_RDWR, 0) };
        }
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: a descriptor this value owns.
        let _ = unsafe { syscall(CLOSE, self.0, 0, 0, 0) };
    }
}

/// Fresh zeroed memory of `len` bytes (an anonymous mapping), never given back: the process
/// execs or exits soon after.
pub fn memory(len: usize) -> Option<&'static mut [u8]> {
    if len == 0 {
        return None;
    }
    const PROT_READ_WRITE: usize = 3;
    const MAP_PRIVATE_ANONYMOUS: usize = 0x22;
    let ret: isize;
    // SAFETY: mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) makes a new
    // mapping and touches no memory of ours; it takes six arguments (r10, r8, r9).
    unsafe {
        asm!("syscall", inlateout("rax") MMAP as isize => ret, in("rdi") 0usize, in("rsi") len,
            in("rdx") PROT_READ_WRITE, in("r10") MAP_PRIVATE_ANONYMOUS, in("r8") -1isize,
            in("r9") 0usize, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    if (-4095..0).contains(&ret) {
        return None;
    }
    // SAFETY: a new mapping of `len` writable bytes that nothing else refers to.
    Some(unsafe { core::slice::from_raw_parts_mut(ret as *mut u8, len) })
}

/// The path of the program running now: `/proc/self/exe`, else (no `/proc`) the name it was
/// started by, `exec_name` (the kernel's `AT_EXECFN`).
pub fn own_path(exec_name: Option<&[u8]>) -> Option<CPath> {
    let mut path = CPath::of(&[])?;
    // SAFETY: a NUL-terminated path and a buffer of its size less the NUL.
    let read = unsafe {
        syscall(
            READLINKAT,
            AT_FDCWD,
            c"/proc/self/exe".as_ptr() as usize,
            path.buf.as_mut_ptr() as usize,
            path.buf.len() - 1,
        )
    };
    match read {
        // A full buffer may be a cut path.
        Ok(n) if n < path.buf.len() - 1 => {
            path.len = n;
            Some(path)
        }
        _ => CPath::of(&[exec_name?]),
    }
}

/// Sets SIGPIPE's disposition to the default, as the standard library does before it execs a
/// program (baton's pass-through is such an exec; it keeps the signal mask, and so does this).
pub fn default_sigpipe() {
    const SIGPIPE: usize = 13;
    // `struct kernel_sigaction`: handler (SIG_DFL), flags, restorer, mask.
    let default = [0u64; 4];
    // SAFETY: a sigaction of the kernel's layout; the old one is not asked for.
    let _ = unsafe { rt_sigaction(SIGPIPE, default.as_ptr() as usize) };
}

/// # Safety
/// `act` points at a `struct kernel_sigaction`.
unsafe fn rt_sigaction(sig: usize, act: usize) -> Result<usize, isize> {
    // SAFETY: rt_sigaction(sig, act, NULL, sizeof(sigset_t)).
    unsafe { syscall(RT_SIGACTION, sig, act, 0, 8) }
}

/// Replaces this process with `path`, given `argv` (NULL-terminated) and the environment.
/// Returns only if that failed, with the error.
pub fn execve(path: &CPath, argv: &[*const u8], envp: *const *const u8) -> isize {
    if argv.last() != Some(&core::ptr::null()) {
        return 22; // EINVAL: never reached, every caller ends its list.
    }
    // SAFETY: a NUL-terminated path, a NULL-terminated list of NUL-terminated strings, and the
    // environment the kernel gave this process.
    match unsafe {
        syscall(
            EXECVE,
            path.ptr() as usize,
            argv.as_ptr() as usize,
            envp as usize,
            0,
        )
    } {
        Ok(_) => 0,
        Err(e) => e,
    }
}

/// Writes all of `bytes` to standard error, as far as it goes.
pub fn write_stderr(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: a readable buffer of its length.
        match unsafe { syscall(WRITE, 2, rest.as_ptr() as usize, rest.len(), 0) } {
            Err(EINTR) => {}
            Ok(0) | Err(_) => return,
            Ok(n) => rest = &rest[n.min(rest.len())..],
        }
    }
}

pub fn exit(code: i32) -> ! {
    // SAFETY: exit_group ends the process.
    unsafe {
        let _ = syscall(EXIT_GROUP, code as usize, 0, 0, 0);
    }
    #[allow(clippy::empty_loop)]
    loop {}
}
