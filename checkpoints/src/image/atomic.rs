//! Atomic creation of an image directory: everything is written into a
//! hidden temporary directory next to the target, fsynced, and renamed into
//! place with `RENAME_NOREPLACE` (Linux: fs/namei.c `renameat2`), after
//! which the parent directory is fsynced. Until the rename the target does
//! not exist; if anything fails (or the writer is dropped) the temporary
//! directory is removed.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::WriteError;

/// A temporary image directory that becomes `target` on [`commit`].
///
/// [`commit`]: TempDir::commit
pub(crate) struct TempDir {
    tmp: PathBuf,
    target: PathBuf,
    parent: PathBuf,
    committed: bool,
}

fn io<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> WriteError + 'p {
    move |source| WriteError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

impl TempDir {
    /// Creates `.NAME.tmp-PID-N` next to `target`, which must not exist.
    pub(crate) fn create(target: &Path) -> Result<TempDir, WriteError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let bad = || WriteError::BadTarget {
            path: target.to_owned(),
        };
        let name = target.file_name().ok_or_else(bad)?.to_string_lossy();
        let parent = match target.parent() {
            Some(p) if p.as_os_str().is_empty() => PathBuf::from("."),
            Some(p) => p.to_owned(),
            None => return Err(bad()),
        };
        if target.symlink_metadata().is_ok() {
            return Err(WriteError::TargetExists {
                path: target.to_owned(),
            });
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = parent.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        std::fs::create_dir(&tmp).map_err(io("create directory", &tmp))?;
        Ok(TempDir {
            tmp,
            target: target.to_owned(),
            parent,
            committed: false,
        })
    }

    /// The temporary directory to write into.
    pub(crate) fn path(&self) -> &Path {
        &self.tmp
    }

    /// Fsyncs the directory, renames it to the target (never replacing an
    /// existing one) and fsyncs the parent.
    pub(crate) fn commit(mut self, sync: bool) -> Result<(), WriteError> {
        if sync {
            File::open(&self.tmp)
                .and_then(|d| d.sync_all())
                .map_err(io("fsync", &self.tmp))?;
        }
        let cwd = rustix::fs::CWD;
        rustix::fs::renameat_with(
            cwd,
            &self.tmp,
            cwd,
            &self.target,
            rustix::fs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| {
            if e == rustix::io::Errno::EXIST {
                WriteError::TargetExists {
                    path: self.target.clone(),
                }
            } else {
                WriteError::Io {
                    op: "rename",
                    path: self.target.clone(),
                    source: e.into(),
                }
            }
        })?;
        self.committed = true;
        if sync {
            File::open(&self.parent)
                .and_then(|d| d.sync_all())
                .map_err(io("fsync", &self.parent))?;
        }
        Ok(())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the error that got us here is the one to report.
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Removes temporary image directories in `parent` left by writers that
/// died mid-write (`kill -9`, power loss): hidden `.NAME.tmp-PID-N`
/// directories whose PID no longer exists (`/proc/PID` is absent). Live
/// writers' directories are kept. Returns the directories removed.
///
/// PIDs are reused, so a crashed writer's directory may survive until the
/// PID is free again; it never looks like a valid image meanwhile.
pub fn remove_stale_temporaries(parent: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(parent)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = temp_dir_pid(&name.to_string_lossy()) else {
            continue;
        };
        if Path::new("/proc").join(pid.to_string()).exists() || !entry.file_type()?.is_dir() {
            continue;
        }
        std::fs::remove_dir_all(entry.path())?;
        removed.push(entry.path());
    }
    Ok(removed)
}

/// The writer PID in a temporary directory name `.NAME.tmp-PID-N`.
fn temp_dir_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (_, tail) = rest.rsplit_once(".tmp-")?;
    let (pid, n) = tail.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_yield_their_pid() {
        assert_eq!(temp_dir_pid(".img.tmp-1234-0"), Some(1234));
        assert_eq!(temp_dir_pid(".a.tmp-b.tmp-77-12"), Some(77));
        assert_eq!(temp_dir_pid("img.tmp-1234-0"), None);
        assert_eq!(temp_dir_pid(".img.tmp-x-0"), None);
    }

    #[test]
    fn only_dead_writers_temporaries_are_removed() {
        let root = tempfile::tempdir().unwrap();
        // PIDs are below pid_max (at most 2^22 on Linux): this one is dead.
        let dead = root.path().join(".img.tmp-4294967-0");
        let live = root
            .path()
            .join(format!(".img.tmp-{}-0", std::process::id()));
        let image = root.path().join("img");
        for d in [&dead, &live, &image] {
            std::fs::create_dir(d).unwrap();
        }

        let removed = remove_stale_temporaries(root.path()).unwrap();

        assert_eq!(removed, vec![dead.clone()]);
        assert!(!dead.exists() && live.exists() && image.exists());
    }
}
