//! `after_load` hook context.

/// Passed down [`crate::Stateify::after_load_walk`]; counts the hooks run.
#[derive(Debug, Default)]
pub struct AfterLoad {
    hooks_run: usize,
}

impl AfterLoad {
    /// Records that a hook ran (called by derived code after each hook).
    #[doc(hidden)]
    pub fn ran(&mut self) {
        self.hooks_run += 1;
    }

    /// Hooks run so far.
    pub fn hooks_run(&self) -> usize {
        self.hooks_run
    }
}
