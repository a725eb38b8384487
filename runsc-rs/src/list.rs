//! `sbx list`: the running sandboxes of this state directory.

use anyhow::Result;
use clap::Args;

use crate::state_dir::StateDir;

/// List running sandboxes (stale entries of dead ones are removed).
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn list(args: ListArgs) -> Result<i32> {
    let dir = StateDir::open()?;
    let all = dir.list()?;
    if args.json {
        println!("{}", serde_json::to_string(&all)?);
        return Ok(0);
    }
    println!(
        "{:<24} {:>8} {:>12} {:<20} COMMAND",
        "ID", "PID", "CREATED", "RESTORED-FROM"
    );
    for r in all {
        println!(
            "{:<24} {:>8} {:>12} {:<20} {}",
            r.id,
            r.pid,
            r.created,
            r.restored_from.as_deref().unwrap_or("-"),
            r.command
        );
    }
    Ok(0)
}
