//! The initial process stack, laid out exactly as Linux builds it
//! (fs/exec.c `copy_strings`, fs/binfmt_elf.c `create_elf_tables`).
//!
//! From the top of the stack down:
//! ```text
//!   stack_top - 8        a NULL word
//!   execfn string        (AT_EXECFN)
//!   envp strings, argv strings   (argv[0] lowest)
//!   -- aligned down to 16 --
//!   platform string "x86_64"     (AT_PLATFORM)
//!   16 random bytes              (AT_RANDOM)
//!   -- padding so that sp is 16-byte aligned --
//!   auxv pairs ... AT_NULL
//!   NULL, envp pointers
//!   NULL, argv pointers
//!   argc                          <- sp
//! ```

use super::aux::*;
use crate::errno::{Errno, SysResult};
use crate::mm::MemoryManager;
use crate::platform::Context;

/// Longest single argument or environment string, NUL included
/// (`MAX_ARG_STRLEN`, 32 pages).
pub const MAX_ARG_STRLEN: usize = 32 * 4096;
/// Lower bound of the argument space (`ARG_MAX`).
const ARG_MAX: u64 = 128 * 1024;

/// Where the pieces of the initial stack ended up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackLayout {
    /// The initial `rsp` (points at argc).
    pub sp: u64,
    /// `[arg_start, arg_end)`: argv strings (`/proc/<pid>/cmdline`).
    pub arg_start: u64,
    pub arg_end: u64,
    /// `[env_start, env_end)`: envp strings (`/proc/<pid>/environ`).
    pub env_start: u64,
    pub env_end: u64,
    /// The auxiliary vector as written, AT_NULL excluded
    /// (`/proc/<pid>/auxv`).
    pub auxv: Vec<(u64, u64)>,
}

/// What goes on the stack.
pub(super) struct StackContents<'a> {
    pub argv: &'a [Vec<u8>],
    pub envp: &'a [Vec<u8>],
    pub execfn: &'a [u8],
    pub platform: &'a [u8],
    pub random: [u8; 16],
    /// Auxv entries except AT_RANDOM, AT_EXECFN, AT_PLATFORM and AT_NULL,
    /// which are added here.
    pub auxv: Vec<(u64, u64)>,
}

/// Writes the initial stack below `stack_top` (the stack VMA
/// `[stack_bottom, stack_top)` is mapped read/write).
pub(super) fn build(
    ctx: &mut dyn Context,
    mm: &mut MemoryManager,
    stack_top: u64,
    stack_bottom: u64,
    c: StackContents<'_>,
) -> SysResult<StackLayout> {
    let strings = c.argv.iter().chain(c.envp.iter());
    let mut str_bytes: u64 = 0;
    for s in strings {
        if s.len() + 1 > MAX_ARG_STRLEN {
            return Err(Errno::E2BIG.because("argument or environment string too long"));
        }
        str_bytes += s.len() as u64 + 1;
    }
    let ptr_bytes = (c.argv.len() as u64 + c.envp.len() as u64 + 2) * 8;
    let limit = ((stack_top - stack_bottom) / 4).max(ARG_MAX);
    if str_bytes + ptr_bytes > limit {
        return Err(Errno::E2BIG.because("arguments and environment exceed the stack limit"));
    }

    // Strings, growing down from the NULL word at the top.
    let mut p = stack_top - 8;
    let mut place = |s: &[u8]| {
        p -= s.len() as u64 + 1;
        p
    };
    let execfn_addr = place(c.execfn);
    let mut env_addrs: Vec<u64> = c.envp.iter().rev().map(|s| place(s)).collect();
    env_addrs.reverse();
    let mut arg_addrs: Vec<u64> = c.argv.iter().rev().map(|s| place(s)).collect();
    arg_addrs.reverse();
    let arg_start = p;
    p &= !15;
    p -= c.platform.len() as u64 + 1;
    let platform_addr = p;
    p -= 16;
    let random_addr = p;

    let mut auxv = c.auxv;
    auxv.push((AT_RANDOM, random_addr));
    auxv.push((AT_EXECFN, execfn_addr));
    auxv.push((AT_PLATFORM, platform_addr));
    let words = 1 + (c.argv.len() + 1) + (c.envp.len() + 1) + 2 * (auxv.len() + 1);
    let sp = (p - 8 * words as u64) & !15;
    if sp < stack_bottom + 4096 {
        return Err(Errno::E2BIG.because("initial stack does not fit"));
    }

    // Build the image of [sp, stack_top) and write it in one copy.
    let mut img = vec![0u8; (stack_top - sp) as usize];
    let mut put = |addr: u64, bytes: &[u8]| {
        let o = (addr - sp) as usize;
        img[o..o + bytes.len()].copy_from_slice(bytes);
    };
    put(execfn_addr, c.execfn);
    for (s, &a) in c.envp.iter().zip(&env_addrs) {
        put(a, s);
    }
    for (s, &a) in c.argv.iter().zip(&arg_addrs) {
        put(a, s);
    }
    put(platform_addr, c.platform);
    put(random_addr, &c.random);
    let mut w = sp;
    let mut word = |v: u64| {
        put(w, &v.to_le_bytes());
        w += 8;
    };
    word(c.argv.len() as u64);
    arg_addrs.iter().for_each(|&a| word(a));
    word(0);
    env_addrs.iter().for_each(|&a| word(a));
    word(0);
    for &(k, v) in &auxv {
        word(k);
        word(v);
    }
    word(AT_NULL);
    word(0);
    mm.copy_out(ctx, sp, &img)?;

    Ok(StackLayout {
        sp,
        arg_start,
        arg_end: env_addrs.first().copied().unwrap_or(execfn_addr),
        env_start: env_addrs.first().copied().unwrap_or(execfn_addr),
        env_end: execfn_addr,
        auxv,
    })
}
