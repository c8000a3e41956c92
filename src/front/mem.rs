//! The memory functions the compiler calls (`memcpy`, `memmove`, `memset`, `memcmp`, `bcmp`, `strlen`),
//! which a C library would give. The copies are `rep movsb`/`rep stosb`, so that the compiler
//! cannot turn them back into calls of themselves; `baton-edit` copies a few kilobytes at most.

use core::arch::asm;

/// # Safety
/// `dst` and `src` are valid for `n` bytes and do not overlap.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: as the caller promises; the direction flag is clear, as the ABI keeps it.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
            options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// `dst` and `src` are valid for `n` bytes; they may overlap.
#[no_mangle]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // SAFETY: `dst` starts before `src` or after its end: a forward copy reads each byte
        // before it is written.
        return unsafe { memcpy(dst, src, n) };
    }
    // SAFETY: `dst` lies inside `src..src+n`: copied backwards, from the last byte, with the
    // direction flag set for the copy and cleared again.
    unsafe {
        asm!("std", "rep movsb", "cld", inout("rcx") n => _,
            inout("rdi") dst.wrapping_add(n).wrapping_sub(1) => _,
            inout("rsi") src.wrapping_add(n).wrapping_sub(1) => _, options(nostack));
    }
    dst
}

/// # Safety
/// `dst` is valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: as the caller promises.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8,
            options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// `a` and `b` are valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: `i < n`.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
/// `a` and `b` are valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: as the caller promises.
    unsafe { memcmp(a, b, n) }
}

/// # Safety
/// `s` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let left: usize;
    // SAFETY: `repne scasb` reads up to and including the NUL, which the caller promises.
    unsafe {
        asm!("repne scasb", inout("rcx") usize::MAX => left, inout("rdi") s => _, in("al") 0u8,
            options(nostack));
    }
    // rcx counted down once per byte read, the NUL included.
    !left - 1
}
