//! The kernel core: `Kernel`, the task set and PID namespace, thread groups,
//! tasks and their run loop, signals, timers and clocks.

pub mod creds;
pub mod limits;
pub mod signal;
pub mod time;
