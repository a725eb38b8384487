//! Signals: numbers, sets, dispositions, pending queues and the x86-64
//! signal frame.
//!
//! Linux is the spec: `kernel/signal.c` (generation, queueing, default
//! actions), `arch/x86/kernel/signal.c` (the frame).
//!
//! All signal state lives under the task-set lock (see
//! [`crate::kernel::TaskSet`]); the types here are plain data.

use checkpoints::Stateify;
pub mod action;
pub mod frame;
pub mod queue;

pub use action::{SigAction, SigActions};
pub use queue::{SigInfo, SigQueue};

/// A signal number, 1..=64.
pub type Signal = i32;

pub const SIGHUP: Signal = 1;
pub const SIGINT: Signal = 2;
pub const SIGQUIT: Signal = 3;
pub const SIGILL: Signal = 4;
pub const SIGTRAP: Signal = 5;
pub const SIGABRT: Signal = 6;
pub const SIGBUS: Signal = 7;
pub const SIGFPE: Signal = 8;
pub const SIGKILL: Signal = 9;
pub const SIGUSR1: Signal = 10;
pub const SIGSEGV: Signal = 11;
pub const SIGUSR2: Signal = 12;
pub const SIGPIPE: Signal = 13;
pub const SIGALRM: Signal = 14;
pub const SIGTERM: Signal = 15;
pub const SIGSTKFLT: Signal = 16;
pub const SIGCHLD: Signal = 17;
pub const SIGCONT: Signal = 18;
pub const SIGSTOP: Signal = 19;
pub const SIGTSTP: Signal = 20;
pub const SIGTTIN: Signal = 21;
pub const SIGTTOU: Signal = 22;
pub const SIGURG: Signal = 23;
pub const SIGXCPU: Signal = 24;
pub const SIGXFSZ: Signal = 25;
pub const SIGVTALRM: Signal = 26;
pub const SIGPROF: Signal = 27;
pub const SIGWINCH: Signal = 28;
pub const SIGIO: Signal = 29;
pub const SIGPWR: Signal = 30;
pub const SIGSYS: Signal = 31;
/// Highest signal number (`_NSIG`).
pub const NSIG: Signal = 64;

/// Whether `sig` is a valid signal number.
pub fn valid(sig: Signal) -> bool {
    (1..=NSIG).contains(&sig)
}

/// A set of signals, bit `n-1` for signal `n` (the kernel `sigset_t`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Stateify)]
pub struct SigSet(pub u64);

impl SigSet {
    pub const EMPTY: SigSet = SigSet(0);
    /// SIGKILL and SIGSTOP can never be blocked, caught or ignored.
    pub const UNBLOCKABLE: SigSet = SigSet((1 << (SIGKILL - 1)) | (1 << (SIGSTOP - 1)));

    /// The set holding `sig` (empty for an invalid number).
    pub fn of(sig: Signal) -> SigSet {
        let mut s = SigSet::EMPTY;
        s.add(sig);
        s
    }
    pub fn has(self, sig: Signal) -> bool {
        valid(sig) && self.0 & (1u64 << (sig - 1)) != 0
    }
    pub fn add(&mut self, sig: Signal) {
        if valid(sig) {
            self.0 |= 1u64 << (sig - 1);
        }
    }
    pub fn remove(&mut self, sig: Signal) {
        if valid(sig) {
            self.0 &= !(1u64 << (sig - 1));
        }
    }
    /// The set with SIGKILL and SIGSTOP removed (what a mask may hold).
    pub fn blockable(self) -> SigSet {
        SigSet(self.0 & !Self::UNBLOCKABLE.0)
    }
}

/// What a signal does when its disposition is `SIG_DFL`
/// (Linux: `kernel/signal.c`, `sig_kernel_*` tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    Terminate,
    CoreDump,
    Ignore,
    Stop,
    Continue,
}

/// The default action of `sig`.
pub fn default_action(sig: Signal) -> DefaultAction {
    match sig {
        SIGCHLD | SIGURG | SIGWINCH => DefaultAction::Ignore,
        SIGCONT => DefaultAction::Continue,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => DefaultAction::Stop,
        SIGQUIT | SIGILL | SIGTRAP | SIGABRT | SIGBUS | SIGFPE | SIGSEGV | SIGXCPU | SIGXFSZ
        | SIGSYS => DefaultAction::CoreDump,
        _ => DefaultAction::Terminate,
    }
}

/// Name of a signal, for logs.
pub fn name(sig: Signal) -> &'static str {
    const NAMES: [&str; 32] = [
        "SIG0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(sig)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
        .unwrap_or("SIGRT")
}

/// The alternate signal stack of a task (`stack_t`, `sigaltstack(2)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Stateify)]
pub struct AltStack {
    pub sp: u64,
    pub size: u64,
    /// `SS_DISABLE` (2) when no stack is set; `SS_AUTODISARM` bit kept.
    pub flags: i32,
}

pub const SS_ONSTACK: i32 = 1;
pub const SS_DISABLE: i32 = 2;
pub const SS_AUTODISARM: i32 = 1 << 31;

impl AltStack {
    pub fn disabled() -> AltStack {
        AltStack {
            sp: 0,
            size: 0,
            flags: SS_DISABLE,
        }
    }
    pub fn enabled(&self) -> bool {
        self.flags & SS_DISABLE == 0 && self.size != 0
    }
    /// Whether `sp` lies on this stack (Linux `on_sig_stack`).
    pub fn contains(&self, sp: u64) -> bool {
        self.enabled() && sp > self.sp && sp - self.sp <= self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unblockable_signals_are_removed_from_masks() {
        let all = SigSet(u64::MAX).blockable();
        assert!(!all.has(SIGKILL));
        assert!(!all.has(SIGSTOP));
        assert!(all.has(SIGTERM));
    }

    #[test]
    fn default_actions_match_linux() {
        assert_eq!(default_action(SIGSEGV), DefaultAction::CoreDump);
        assert_eq!(default_action(SIGCHLD), DefaultAction::Ignore);
        assert_eq!(default_action(SIGTERM), DefaultAction::Terminate);
        assert_eq!(default_action(SIGTSTP), DefaultAction::Stop);
    }

    #[test]
    fn altstack_contains_its_top_but_not_its_base() {
        let s = AltStack {
            sp: 0x1000,
            size: 0x1000,
            flags: 0,
        };
        assert!(s.contains(0x2000));
        assert!(!s.contains(0x1000));
        assert!(!AltStack::disabled().contains(0x1800));
    }
}
