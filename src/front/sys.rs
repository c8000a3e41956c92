//! The Linux system calls `baton-edit` makes, on x86-64, without a C library: each is one
//! `syscall` instruction, and returns the kernel's result or `Err(errno)`.

use core::arch::asm;

pub const ENOENT: isize = 2;

const READ: usize = 0;
const WRITE: usize = 1;
const OPEN: usize = 2;
const CLOSE: usize = 3;
const STAT: usize = 4;
const MMAP: usize = 9;
const RT_SIGACTION: usize = 13;
const ACCESS: usize = 21;
const EXECVE: usize = 59;
const READLINK: usize = 89;
const EXIT_GROUP: usize = 231;

const O_RDONLY_CLOEXEC: usize = 0o2000000;
const X_OK: usize = 1;
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

/// # Safety
/// The arguments must be what system call `n` expects (valid pointers to buffers of the sizes
/// given, NUL-terminated paths).
unsafe fn syscall(n: usize, a: usize, b: usize, c: usize) -> Result<usize, isize> {
    let ret: isize;
    // SAFETY: the caller passes what the call expects; the kernel clobbers rcx and r11 only.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b, in("rdx") c,
            lateout("rcx") _, lateout("r11") _, options(nostack));
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

/// The kernel's `struct stat` on x86-64.
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
    _rest: [u64; 12],
}

/// `stat(2)`: follows links.
pub fn stat(path: &CPath) -> Result<FileId, isize> {
    let mut st = core::mem::MaybeUninit::<Stat>::zeroed();
    // SAFETY: a NUL-terminated path and a buffer the size of the kernel's `struct stat`.
    unsafe { syscall(STAT, path.ptr() as usize, st.as_mut_ptr() as usize, 0)? };
    // SAFETY: zeroed, then filled by the kernel.
    let st = unsafe { st.assume_init() };
    Ok(FileId {
        dev: st.dev,
        ino: st.ino,
        regular: st.mode & S_IFMT == S_IFREG,
        size: st.size.max(0) as u64,
    })
}

impl FileId {
    pub fn same(&self, other: &FileId) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }
}

/// Whether this process may execute `path` (`access(2)` with `X_OK`).
pub fn executable(path: &CPath) -> bool {
    // SAFETY: a NUL-terminated path.
    unsafe { syscall(ACCESS, path.ptr() as usize, X_OK, 0).is_ok() }
}

/// An open file, closed when dropped.
pub struct Fd(usize);

impl Fd {
    pub fn open(path: &CPath) -> Result<Fd, isize> {
        // SAFETY: a NUL-terminated path.
        unsafe { syscall(OPEN, path.ptr() as usize, O_RDONLY_CLOEXEC, 0).map(Fd) }
    }

    pub fn read(&self, buf: &mut [u8]) -> Result<usize, isize> {
        // SAFETY: the buffer is writable for its length.
        unsafe { syscall(READ, self.0, buf.as_mut_ptr() as usize, buf.len()) }
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: a descriptor this value owns.
        let _ = unsafe { syscall(CLOSE, self.0, 0, 0) };
    }
}

/// Fresh zeroed memory of `len` bytes (an anonymous mapping), never given back: the process
/// execs or exits soon after.
pub fn memory(len: usize) -> Option<&'static mut [u8]> {
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
    if (-4095..0).contains(&ret) || len == 0 {
        return None;
    }
    // SAFETY: a new mapping of `len` writable bytes that nothing else refers to.
    Some(unsafe { core::slice::from_raw_parts_mut(ret as *mut u8, len) })
}

/// The path of the program running now (`/proc/self/exe`).
pub fn own_path() -> Option<CPath> {
    let link = CPath::of(&[b"/proc/self/exe"])?;
    let mut path = CPath::of(&[])?;
    // SAFETY: a NUL-terminated path and a buffer of its size less the NUL.
    let n = unsafe {
        syscall(
            READLINK,
            link.ptr() as usize,
            path.buf.as_mut_ptr() as usize,
            path.buf.len() - 1,
        )
    }
    .ok()?;
    path.len = n;
    Some(path)
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
    let ret: isize;
    // SAFETY: rt_sigaction(sig, act, NULL, 8): four arguments, the fourth in r10.
    unsafe {
        asm!("syscall", inlateout("rax") RT_SIGACTION as isize => ret, in("rdi") sig,
            in("rsi") act, in("rdx") 0usize, in("r10") 8usize, lateout("rcx") _,
            lateout("r11") _, options(nostack));
    }
    if ret < 0 {
        Err(-ret)
    } else {
        Ok(ret as usize)
    }
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
        match unsafe { syscall(WRITE, 2, rest.as_ptr() as usize, rest.len()) } {
            Ok(0) | Err(_) => return,
            Ok(n) => rest = &rest[n.min(rest.len())..],
        }
    }
}

pub fn exit(code: i32) -> ! {
    // SAFETY: exit_group ends the process.
    unsafe {
        let _ = syscall(EXIT_GROUP, code as usize, 0, 0);
    }
    #[allow(clippy::empty_loop)]
    loop {}
}
