//! `#[derive(Stateify)]` — generates checkpoint save/load code for sbx
//! kernel state. See `checkpoints::state` for the runtime it targets.
#![forbid(unsafe_code)]
