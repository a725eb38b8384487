//! The sbx user-space kernel (the *sentry*).
//!
//! It implements the Linux x86-64 system-call ABI for unmodified programs
//! whose code runs in stub processes provided by a [`platform::Platform`].
//! Every guest system call is executed here; the host kernel never runs one
//! on the guest's behalf.
//!
//! Modules:
//! - [`platform`]: the contract between the kernel and an execution
//!   platform (ptrace today): contexts, register files, injected mappings.
//! - [`kernel`]: tasks, thread groups, PID namespace, signals, clocks.
//! - [`mm`]: the memory file, address spaces, faults, copy-in/out.
//! - [`vfs`]: fds, file descriptions, overlay root, devices, procfs, pipes.
//! - [`loader`]: ELF loading and the initial stack.
//! - [`syscalls`]: the syscall table and handlers by family.
//! - [`errno`], [`waiter`]: shared vocabulary of the syscall path.
#![deny(unsafe_code)]

pub mod errno;
pub mod kernel;
pub mod loader;
pub mod mm;
pub mod platform;
pub mod syscalls;
pub mod vfs;
pub mod waiter;
