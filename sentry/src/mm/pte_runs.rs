//! Checkpoint encoding of a page table as runs (`#[state(with)]` module of
//! `MemoryManager::ptes`).
//!
//! A run is guest pages `[addr, addr + pages * 4096)` backed by the
//! consecutive memory-file pages from `off`: memory touched in order (a
//! heap, a stack, a file read) is one run instead of one entry per page, so
//! the saved state and its decode no longer grow with the memory touched.
//! `Pte::stub` is host state and not saved (it restarts as `None`, as with
//! the per-entry form this replaces).
//!
//! Layout: run count, then per run three varints: `addr / 4096`,
//! `off / 4096`, `pages` (≥ 1). Runs are ascending and non-overlapping;
//! anything else is refused on load.

use std::collections::BTreeMap;

use checkpoints::state::{Decoder, Encoder, LoadError, SaveError};

use super::manager::Pte;
use super::memfile::{DEFAULT_CAPACITY, PAGE_SIZE};

/// Most entries a loaded page table may have.
const MAX_ENTRIES: u64 = DEFAULT_CAPACITY / PAGE_SIZE;

/// Schema contribution: "page-table runs (addr, off, pages) in pages",
/// version 1.
pub const FINGERPRINT: u64 = 0x5054_4552_554e_0001;

const TYPE_NAME: &str = "sbx::mm::PageTableRuns";

fn invalid(reason: &'static str) -> LoadError {
    LoadError::InvalidValue {
        type_name: TYPE_NAME,
        reason,
    }
}

/// `(addr, off, pages)` of every run, ascending.
fn runs(ptes: &BTreeMap<u64, Pte>) -> Vec<(u64, u64, u64)> {
    let mut out: Vec<(u64, u64, u64)> = Vec::new();
    for (&addr, pte) in ptes {
        if let Some((a, o, n)) = out.last_mut() {
            let next = *n * PAGE_SIZE;
            if *a + next == addr && *o + next == pte.off {
                *n += 1;
                continue;
            }
        }
        out.push((addr, pte.off, 1));
    }
    out
}

pub fn save(ptes: &BTreeMap<u64, Pte>, enc: &mut Encoder) -> Result<(), SaveError> {
    let runs = runs(ptes);
    enc.write_len(runs.len());
    for (addr, off, pages) in runs {
        enc.write_varint(addr / PAGE_SIZE);
        enc.write_varint(off / PAGE_SIZE);
        enc.write_varint(pages);
    }
    Ok(())
}

pub fn load(dec: &mut Decoder<'_>) -> Result<BTreeMap<u64, Pte>, LoadError> {
    // Each run takes at least three bytes (three varints).
    let n = dec.read_len(3)?;
    let mut entries: Vec<(u64, Pte)> = Vec::new();
    let mut end = 0u64;
    let mut total = 0u64;
    for _ in 0..n {
        let addr = dec.read_varint()?;
        let off = dec.read_varint()?;
        let pages = dec.read_varint()?;
        if pages == 0 {
            return Err(invalid("empty run"));
        }
        let bytes = pages
            .checked_mul(PAGE_SIZE)
            .ok_or(invalid("run length overflows"))?;
        let (Some(addr), Some(off)) = (addr.checked_mul(PAGE_SIZE), off.checked_mul(PAGE_SIZE))
        else {
            return Err(invalid("run address overflows"));
        };
        let (Some(addr_end), Some(off_end)) = (addr.checked_add(bytes), off.checked_add(bytes))
        else {
            return Err(invalid("run end overflows"));
        };
        if addr < end {
            return Err(invalid("runs not ascending or overlapping"));
        }
        if off_end > DEFAULT_CAPACITY {
            return Err(invalid("run beyond the largest memory file"));
        }
        end = addr_end;
        // The input no longer bounds the entry count; a memory file holds
        // at most `MAX_ENTRIES` pages, and one address space maps each at
        // most once in practice.
        total = total.saturating_add(pages);
        if total > MAX_ENTRIES {
            return Err(invalid("more pages than the largest memory file holds"));
        }
        entries.extend((0..pages).map(|i| {
            (
                addr + i * PAGE_SIZE,
                Pte {
                    off: off + i * PAGE_SIZE,
                    stub: None,
                },
            )
        }));
    }
    // Sorted and unique (checked above): a bulk build.
    Ok(entries.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkpoints::Stateify;

    #[derive(Debug, Stateify)]
    #[state(name = "test.PteHolder")]
    struct Holder {
        #[state(with = "super")]
        ptes: BTreeMap<u64, Pte>,
    }

    /// Same schema as `Holder`, but writes the given varints as the runs.
    #[derive(Stateify)]
    #[state(name = "test.PteHolder")]
    struct RawHolder {
        #[state(with = "raw")]
        ptes: Vec<u64>,
    }

    mod raw {
        use checkpoints::state::{Decoder, Encoder, LoadError, SaveError};

        pub const FINGERPRINT: u64 = super::super::FINGERPRINT;

        pub fn save(v: &Vec<u64>, enc: &mut Encoder) -> Result<(), SaveError> {
            enc.write_len(v.len() / 3);
            for &x in v {
                enc.write_varint(x);
            }
            Ok(())
        }

        pub fn load(_: &mut Decoder<'_>) -> Result<Vec<u64>, LoadError> {
            Err(LoadError::Truncated)
        }
    }

    fn table(entries: &[(u64, u64)]) -> BTreeMap<u64, Pte> {
        entries
            .iter()
            .map(|&(a, o)| {
                (
                    a * PAGE_SIZE,
                    Pte {
                        off: o * PAGE_SIZE,
                        stub: None,
                    },
                )
            })
            .collect()
    }

    fn round_trip(ptes: BTreeMap<u64, Pte>) -> (usize, BTreeMap<u64, Pte>) {
        let saved = checkpoints::state::save(&Holder { ptes }).unwrap();
        let back: Holder = checkpoints::state::load(&saved).unwrap();
        (saved.bytes.len(), back.ptes)
    }

    fn load_raw(ptes: &[u64]) -> Result<BTreeMap<u64, Pte>, LoadError> {
        let saved = checkpoints::state::save(&RawHolder {
            ptes: ptes.to_vec(),
        })
        .unwrap();
        checkpoints::state::load::<Holder>(&saved).map(|h| h.ptes)
    }

    #[test]
    fn contiguous_pages_make_one_run_and_round_trip() {
        // Guest pages 16..16+N backed by file pages 3..3+N, then a break in
        // the file offsets, then a break in the guest addresses.
        const N: u64 = 10_000;
        let mut e: Vec<(u64, u64)> = (0..N).map(|i| (16 + i, 3 + i)).collect();
        e.push((16 + N, 2 * N));
        e.push((5 * N, 2 * N + 1));
        let t = table(&e);
        assert_eq!(
            runs(&t),
            vec![
                (16 * PAGE_SIZE, 3 * PAGE_SIZE, N),
                ((16 + N) * PAGE_SIZE, 2 * N * PAGE_SIZE, 1),
                (5 * N * PAGE_SIZE, (2 * N + 1) * PAGE_SIZE, 1),
            ]
        );
        let (small, _) = round_trip(BTreeMap::new());
        let (len, back) = round_trip(t.clone());
        assert_eq!(back, t);
        assert!(len - small < 40, "{} pages in {} bytes", N + 2, len - small);
    }

    #[test]
    fn scattered_and_descending_offsets_round_trip() {
        let t = table(&[(1, 9), (2, 8), (3, 7), (10, 0), (11, 1), (12, 1)]);
        assert_eq!(runs(&t).len(), 5);
        let (_, back) = round_trip(t.clone());
        assert_eq!(back, t);
    }

    #[test]
    fn malformed_runs_are_refused() {
        assert_eq!(load_raw(&[5, 0, 2]).unwrap(), table(&[(5, 0), (6, 1)]));
        assert!(load_raw(&[5, 0, 0]).is_err(), "empty run");
        assert!(load_raw(&[5, 0, 2, 6, 9, 1]).is_err(), "overlap");
        assert!(load_raw(&[5, 0, 1, 4, 9, 1]).is_err(), "descending");
        assert!(
            load_raw(&[u64::MAX / PAGE_SIZE, 0, 2]).is_err(),
            "end overflow"
        );
        assert!(load_raw(&[u64::MAX, 0, 1]).is_err(), "address overflow");
        assert!(load_raw(&[1, u64::MAX, 1]).is_err(), "offset overflow");
        let cap = DEFAULT_CAPACITY / PAGE_SIZE;
        assert!(load_raw(&[1, cap - 1, 1]).is_ok());
        assert!(load_raw(&[1, cap - 1, 2]).is_err(), "past the memory file");
        assert!(
            load_raw(&[0, 0, 1, 1, 0, cap]).is_err(),
            "more entries than the memory file holds"
        );
    }
}
