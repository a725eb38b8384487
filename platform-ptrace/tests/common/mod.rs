//! A small guest for platform tests: a memfd holding a code page and data
//! pages, and a context with the code mapped.
#![allow(dead_code)]

use std::fs::File;
use std::os::unix::fs::FileExt;

use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use platform_ptrace::{PlatformOptions, PtraceContext, PtracePlatform};
use sentry::platform::{Context, Prot, Registers};

/// Guest address of the code page (file offset [`CODE_OFF`]).
pub const CODE: u64 = 0x10000;
/// Guest address of the data page (file offset [`DATA_OFF`]).
pub const DATA: u64 = 0x20000;
/// Guest address left unmapped until a test maps it (file offset
/// [`EXTRA_OFF`]).
pub const EXTRA: u64 = 0x30000;
pub const CODE_OFF: u64 = 0;
pub const DATA_OFF: u64 = 0x1000;
pub const EXTRA_OFF: u64 = 0x2000;
pub const PAGE: u64 = 0x1000;

/// A memory file, a platform over it and one context running `code`.
pub struct Guest {
    pub file: File,
    pub platform: PtracePlatform,
    pub ctx: PtraceContext,
    pub regs: Registers,
}

impl Guest {
    /// Code at `CODE` (RX), a data page at `DATA` (RW), `EXTRA` unmapped;
    /// `rip` at the code.
    pub fn new(code: &[u8]) -> Guest {
        Guest::with_options(code, PlatformOptions::default())
    }

    pub fn with_options(code: &[u8], options: PlatformOptions) -> Guest {
        let fd =
            memfd_create(c"platform-test", MemFdCreateFlag::MFD_CLOEXEC).expect("memfd_create");
        let file = File::from(fd);
        file.set_len(0x10000).expect("ftruncate");
        file.write_all_at(code, CODE_OFF).expect("write code");
        let platform = PtracePlatform::with_options(file.try_clone().expect("dup").into(), options)
            .expect("platform");
        let mut ctx = platform.new_ptrace_context().expect("context");
        ctx.map(CODE, PAGE, Prot::RX, CODE_OFF).expect("map code");
        ctx.map(DATA, PAGE, Prot::RW, DATA_OFF).expect("map data");
        let regs = Registers {
            rip: CODE,
            ..Registers::default()
        };
        Guest {
            file,
            platform,
            ctx,
            regs,
        }
    }

    /// The u64 at file offset `off`.
    pub fn read_u64(&self, off: u64) -> u64 {
        let mut buf = [0u8; 8];
        self.file.read_exact_at(&mut buf, off).expect("read memfd");
        u64::from_le_bytes(buf)
    }

    pub fn write_u64(&self, off: u64, value: u64) {
        self.file
            .write_all_at(&value.to_le_bytes(), off)
            .expect("write memfd");
    }
}
