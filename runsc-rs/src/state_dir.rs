//! The state directory: one control socket and one record per running
//! sandbox.
//!
//! Location: `$SBX_STATE_DIR`, default `/run/sbx` (for root; other users:
//! `$XDG_RUNTIME_DIR/sbx` or `/tmp/sbx-<uid>`). The directory is mode
//! 0700 and must belong to the caller; sockets are 0600; the server also
//! checks the peer's uid (`SO_PEERCRED`, see `control`). So only the owner
//! reaches a sandbox.
//!
//! Layout: `<id>.sock` (the control socket) and `<id>.json` (a
//! [`SandboxRecord`]). A record whose process is dead or whose socket
//! refuses connections is stale: `register` and `list` remove it.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use serde::{Deserialize, Serialize};

/// Default state directory of root.
pub const DEFAULT_STATE_DIR: &str = "/run/sbx";

/// `/run/sbx` for root; for other users `$XDG_RUNTIME_DIR/sbx`, else
/// `/tmp/sbx-<uid>` (a directory they can create and own).
fn default_dir() -> PathBuf {
    let uid = rustix::process::getuid();
    if uid.is_root() {
        return PathBuf::from(DEFAULT_STATE_DIR);
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("sbx"),
        _ => PathBuf::from(format!("/tmp/sbx-{}", uid.as_raw())),
    }
}

/// What `list` shows about a sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    /// Host pid of the `sbx` process running it.
    pub pid: u32,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// The command line (for display).
    pub command: String,
    /// Image it was restored from, if any.
    pub restored_from: Option<String>,
}

/// The state directory.
#[derive(Debug)]
pub struct StateDir {
    path: PathBuf,
}

/// A registered sandbox: removes its socket and record when dropped.
#[derive(Debug)]
pub struct Registration {
    pub id: String,
    pub listener: UnixListener,
    pub socket: PathBuf,
    pub record: PathBuf,
}

impl Registration {
    /// Removes the socket and the record (also done on drop).
    pub fn cleanup(&self) {
        let _ = fs::remove_file(&self.socket);
        let _ = fs::remove_file(&self.record);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Whether `id` is a valid sandbox name: 1–64 of `[A-Za-z0-9_.-]`, not
/// starting with a dot.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

fn pid_alive(pid: u32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid as i32) else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

impl StateDir {
    /// Opens (creating it 0700 if needed) the state directory; refuses one
    /// that another user owns or that others can enter.
    pub fn open() -> Result<StateDir> {
        let path = std::env::var_os("SBX_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(default_dir);
        if !path.exists() {
            fs::create_dir_all(&path)
                .with_context(|| format!("creating the state directory {}", path.display()))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("chmod 0700 {}", path.display()))?;
        }
        let md =
            fs::metadata(&path).with_context(|| format!("state directory {}", path.display()))?;
        let me = rustix::process::getuid().as_raw();
        if md.uid() != me {
            bail!(
                "state directory {} belongs to uid {}, not to you (uid {me})",
                path.display(),
                md.uid()
            );
        }
        if md.mode() & 0o077 != 0 {
            bail!(
                "state directory {} is accessible to other users (mode {:o}); it must be 0700",
                path.display(),
                md.mode() & 0o777
            );
        }
        Ok(StateDir { path })
    }

    pub fn socket_path(&self, id: &str) -> PathBuf {
        self.path.join(format!("{id}.sock"))
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.path.join(format!("{id}.json"))
    }

    /// Whether the sandbox `id` is running (its process lives and its
    /// socket accepts connections).
    fn is_live(&self, id: &str) -> bool {
        let rec = self.read_record(id);
        let alive = rec.as_ref().is_some_and(|r| pid_alive(r.pid));
        alive && UnixStream::connect(self.socket_path(id)).is_ok()
    }

    fn read_record(&self, id: &str) -> Option<SandboxRecord> {
        let bytes = fs::read(self.record_path(id)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn remove_stale(&self, id: &str) {
        let _ = fs::remove_file(self.socket_path(id));
        let _ = fs::remove_file(self.record_path(id));
    }

    /// Registers a sandbox: `id` or a generated one. Refuses a name a live
    /// sandbox holds; cleans a stale one.
    pub fn register(
        &self,
        id: Option<&str>,
        command: String,
        restored_from: Option<String>,
    ) -> Result<Registration> {
        let id = match id {
            Some(id) => {
                if !valid_id(id) {
                    bail!("invalid sandbox id {id:?}: use 1-64 characters of [A-Za-z0-9_.-]");
                }
                id.to_owned()
            }
            None => generate_id(),
        };
        if self.socket_path(&id).exists() || self.record_path(&id).exists() {
            if self.is_live(&id) {
                bail!("a sandbox named {id:?} is already running");
            }
            tracing::info!(id, "removing the stale control socket of a dead sandbox");
            self.remove_stale(&id);
        }
        let socket = self.socket_path(&id);
        let listener = UnixListener::bind(&socket)
            .with_context(|| format!("binding the control socket {}", socket.display()))?;
        fs::set_permissions(&socket, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 0600 {}", socket.display()))?;
        let record = SandboxRecord {
            id: id.clone(),
            pid: std::process::id(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            command,
            restored_from,
        };
        let rec_path = self.record_path(&id);
        let tmp = self.path.join(format!(".{id}.json.{}", std::process::id()));
        let json = serde_json::to_vec(&record).context("encoding the sandbox record")?;
        fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
        fs::rename(&tmp, &rec_path).with_context(|| format!("writing {}", rec_path.display()))?;
        Ok(Registration {
            id,
            listener,
            socket,
            record: rec_path,
        })
    }

    /// Every live sandbox, by id; stale entries are removed.
    pub fn list(&self) -> Result<Vec<SandboxRecord>> {
        let mut out = Vec::new();
        let entries =
            fs::read_dir(&self.path).with_context(|| format!("reading {}", self.path.display()))?;
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(id) = name.strip_suffix(".sock") else {
                continue;
            };
            if !valid_id(id) {
                continue;
            }
            match self.read_record(id) {
                Some(r) if self.is_live(id) => out.push(r),
                _ => self.remove_stale(id),
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The socket of live sandbox `id`, or an error saying it is not
    /// running.
    pub fn live_socket(&self, id: &str) -> Result<PathBuf> {
        if !valid_id(id) {
            bail!("invalid sandbox id {id:?}");
        }
        if !self.is_live(id) {
            if self.socket_path(id).exists() {
                self.remove_stale(id);
            }
            bail!("no running sandbox named {id:?} in {}", self.path.display());
        }
        Ok(self.socket_path(id))
    }
}

/// A fresh id: `sbx-<pid>-<random hex>`.
fn generate_id() -> String {
    let mut b = [0u8; 4];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).unwrap_or(0);
    format!("sbx-{}-{:08x}", std::process::id(), u32::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        assert!(valid_id("web-1.a_b"));
        assert!(!valid_id(""));
        assert!(!valid_id("../x"));
        assert!(!valid_id(".hidden"));
        assert!(!valid_id(&"a".repeat(65)));
    }
}
