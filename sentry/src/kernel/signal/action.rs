//! Signal dispositions (`struct sigaction` as `rt_sigaction(2)` sees it).

use super::{default_action, DefaultAction, SigSet, Signal, NSIG};
use checkpoints::Stateify;

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;

pub const SA_NOCLDSTOP: u64 = 0x1;
pub const SA_NOCLDWAIT: u64 = 0x2;
pub const SA_SIGINFO: u64 = 0x4;
pub const SA_RESTORER: u64 = 0x0400_0000;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;

/// One disposition, in the x86-64 kernel `struct sigaction` layout order:
/// handler, flags, restorer, mask (32 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Stateify)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: SigSet,
}

impl SigAction {
    pub const SIZE: usize = 32;

    /// Decodes the guest's `struct sigaction`.
    pub fn from_bytes(b: &[u8; 32]) -> SigAction {
        let w = |i: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_le_bytes(x)
        };
        SigAction {
            handler: w(0),
            flags: w(1),
            restorer: w(2),
            mask: SigSet(w(3)),
        }
    }

    /// Encodes as the guest's `struct sigaction`.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&self.handler.to_le_bytes());
        b[8..16].copy_from_slice(&self.flags.to_le_bytes());
        b[16..24].copy_from_slice(&self.restorer.to_le_bytes());
        b[24..32].copy_from_slice(&self.mask.0.to_le_bytes());
        b
    }

    /// Whether delivering `sig` with this disposition does nothing
    /// (explicitly ignored, or default action "ignore").
    pub fn ignores(&self, sig: Signal) -> bool {
        match self.handler {
            SIG_IGN => true,
            SIG_DFL => default_action(sig) == DefaultAction::Ignore,
            _ => false,
        }
    }
}

/// The dispositions of one thread group (shared by its threads; Linux
/// `struct sighand_struct`).
#[derive(Clone, Debug, PartialEq, Eq, Stateify)]
pub struct SigActions {
    /// Index `sig - 1`.
    pub actions: Vec<SigAction>,
}

impl Default for SigActions {
    fn default() -> Self {
        SigActions {
            actions: vec![SigAction::default(); NSIG as usize],
        }
    }
}

impl SigActions {
    pub fn get(&self, sig: Signal) -> SigAction {
        usize::try_from(sig - 1)
            .ok()
            .and_then(|i| self.actions.get(i).copied())
            .unwrap_or_default()
    }

    pub fn set(&mut self, sig: Signal, a: SigAction) {
        if let Some(slot) = usize::try_from(sig - 1)
            .ok()
            .and_then(|i| self.actions.get_mut(i))
        {
            *slot = a;
        }
    }

    /// execve: caught signals revert to the default; ignored ones stay
    /// ignored (Linux `flush_signal_handlers(.., force_default=0)`).
    pub fn reset_for_exec(&mut self) {
        for a in &mut self.actions {
            let keep_ignored = a.handler == SIG_IGN;
            *a = SigAction::default();
            if keep_ignored {
                a.handler = SIG_IGN;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::signal::{SIGCHLD, SIGINT, SIGTERM, SIGUSR1};

    #[test]
    fn bytes_round_trip() {
        let a = SigAction {
            handler: 0x401000,
            flags: SA_SIGINFO | SA_RESTORER,
            restorer: 0x402000,
            mask: SigSet(0x5),
        };
        assert_eq!(SigAction::from_bytes(&a.to_bytes()), a);
    }

    #[test]
    fn exec_resets_handlers_but_keeps_ignored() {
        let mut s = SigActions::default();
        s.set(
            SIGUSR1,
            SigAction {
                handler: 0x401000,
                ..Default::default()
            },
        );
        s.set(
            SIGINT,
            SigAction {
                handler: SIG_IGN,
                ..Default::default()
            },
        );
        s.reset_for_exec();
        assert_eq!(s.get(SIGUSR1).handler, SIG_DFL);
        assert_eq!(s.get(SIGINT).handler, SIG_IGN);
    }

    #[test]
    fn sigchld_default_is_ignored_but_sigterm_is_not() {
        let s = SigActions::default();
        assert!(s.get(SIGCHLD).ignores(SIGCHLD));
        assert!(!s.get(SIGTERM).ignores(SIGTERM));
    }
}
