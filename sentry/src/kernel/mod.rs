//! The kernel core: `Kernel`, the task set and PID namespace, thread groups,
//! tasks and their run loop, signals, futexes and clocks.
//!
//! Layout (gVisor `pkg/sentry/kernel`, one concept per file):
//! - [`kernel`]: `Kernel`, the root object; starts init and waits for it.
//! - [`task_set`]: processes, threads, the process tree, sessions and
//!   process groups, and all signal state, under one lock.
//! - [`pid_ns`]: pid allocation. [`thread_group`]: a process's shared
//!   resources (mm, fds, fs context, rlimits). [`task`]: a thread and its
//!   run loop, clone, exec, exit/wait, signal delivery.
//! - [`signal`]: numbers, sets, dispositions, queues, the x86-64 frame.
//! - [`time`], [`creds`], [`limits`], [`futex`], [`procfs`].
//!
//! Lock order: `Kernel::tasks` → `ThreadGroup` fields → `Task::local` →
//! `MemoryManager` → VFS locks; `Futexes` table → `MemoryManager`.

pub mod checkpoint;
pub mod creds;
pub mod futex;
pub mod itimer;
#[allow(clippy::module_inception)]
pub mod kernel;
pub mod limits;
pub mod pause;
pub mod pid_ns;
pub mod procfs;
pub mod restore;
mod restore_memory;
pub mod signal;
pub mod task;
pub mod task_set;
pub mod thread_group;
pub mod time;

pub use kernel::{InitSpec, Kernel, StartError, Uname};
pub use task::{Task, TaskRunner};
pub use task_set::{ExitStatus, TaskSet};
pub use thread_group::ThreadGroup;
