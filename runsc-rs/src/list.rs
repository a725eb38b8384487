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
        "{:<24} {:>8} {:<20} {:<20} COMMAND",
        "ID", "PID", "CREATED", "RESTORED-FROM"
    );
    for r in all {
        println!(
            "{:<24} {:>8} {:<20} {:<20} {}",
            r.id,
            r.pid,
            rfc3339_utc(r.created),
            r.restored_from.as_deref().unwrap_or("-"),
            r.command
        );
    }
    Ok(0)
}

/// `secs` since the Unix epoch as an RFC 3339 UTC time
/// (`2026-11-28T15:00:06Z`), for the table (`--json` keeps the number).
fn rfc3339_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The proleptic Gregorian (year, month, day) of a day count since
/// 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::rfc3339_utc;

    #[test]
    fn created_is_an_rfc3339_utc_time() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_795_705_206), "2026-11-26T15:00:06Z");
        assert_eq!(rfc3339_utc(4_107_542_399), "2100-02-28T23:59:59Z");
    }
}
