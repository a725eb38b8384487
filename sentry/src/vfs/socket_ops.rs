//! Namespace operations of Unix sockets on [`Vfs`]: `bind` (a socket node
//! in the overlay, or an abstract name) and finding the socket behind an
//! address for `connect` and `sendto`. Linux: net/unix/af_unix.c
//! (`unix_bind`, `unix_find_other`).

use std::sync::Arc;

use crate::errno::{Errno, SysResult};
use crate::vfs::file::FileDescription;
use crate::vfs::location::Location;
use crate::vfs::ops::{At, Creds};
use crate::vfs::overlay::NewNode;
use crate::vfs::path::Resolver;
use crate::vfs::proc::ProcSource;
use crate::vfs::stat::FileType;
use crate::vfs::unix::{NameKey, UnixAddr, UnixSocket};
use crate::vfs::{FsContext, Vfs};

impl Vfs {
    /// `bind(2)` of a Unix socket. A path name creates a socket node
    /// (`EADDRINUSE` if the path exists); an abstract name must be free.
    pub fn unix_bind(
        &self,
        ctx: &FsContext,
        sock: &Arc<UnixSocket>,
        addr: UnixAddr,
        creds: Creds,
        src: &dyn ProcSource,
    ) -> SysResult<()> {
        match &addr {
            UnixAddr::Unnamed => Err(Errno::EINVAL.because("bind to an empty address")),
            UnixAddr::Abstract(name) => {
                let key = NameKey::Abstract(name.clone());
                sock.bind(&self.unix, addr.clone(), key)
            }
            UnixAddr::Path(path) => {
                if sock.local_name() != UnixAddr::Unnamed {
                    return Err(Errno::EINVAL.because("socket already bound"));
                }
                let start = if path.first() == Some(&b'/') {
                    ctx.root.clone()
                } else {
                    ctx.cwd.clone()
                };
                let pn = Resolver::new(self, &ctx.root, src).resolve_parent(&start, path)?;
                if pn.name == b"." || pn.name == b".." || pn.trailing_slash {
                    return Err(Errno::EADDRINUSE);
                }
                let Location::Overlay(dir) = &pn.dir else {
                    return Err(Errno::EACCES.because("synthetic filesystem is read-only"));
                };
                let perm = 0o777 & !ctx.umask;
                let node = self
                    .overlay()
                    .create(dir, &pn.name, NewNode::Socket, perm, creds.uid, creds.gid)
                    .map_err(|e| {
                        if e.code() == libc::EEXIST {
                            Errno::EADDRINUSE
                        } else {
                            e
                        }
                    })?;
                let key = NameKey::Node {
                    dev: node.dev(),
                    ino: node.ino(),
                };
                sock.bind(&self.unix, addr.clone(), key)
            }
        }
    }

    /// The socket bound to `addr` (`connect`, `sendto`).
    pub fn unix_find(
        &self,
        ctx: &FsContext,
        addr: &UnixAddr,
        src: &dyn ProcSource,
    ) -> SysResult<Arc<UnixSocket>> {
        let key = match addr {
            UnixAddr::Unnamed => return Err(Errno::EINVAL.because("empty address")),
            UnixAddr::Abstract(name) => NameKey::Abstract(name.clone()),
            UnixAddr::Path(path) => {
                let loc = self.lookup(ctx, At::Cwd, path, true, src)?;
                if loc.file_type() != FileType::Socket {
                    return Err(Errno::ECONNREFUSED.because("not a socket"));
                }
                let st = loc.stat(src);
                NameKey::Node {
                    dev: st.dev,
                    ino: st.ino,
                }
            }
        };
        self.unix
            .get(&key)
            .ok_or(Errno::ECONNREFUSED.because("no socket bound to that name"))
    }

    /// `connect(2)` of a Unix socket to `addr`. A new server-side
    /// description waits in the listener's queue for `accept`.
    pub fn unix_connect(
        &self,
        ctx: &FsContext,
        sock: &Arc<UnixSocket>,
        addr: &UnixAddr,
        src: &dyn ProcSource,
    ) -> SysResult<()> {
        let target = self.unix_find(ctx, addr, src)?;
        sock.connect(&target, addr.clone(), |server| {
            FileDescription::new_socket(server, 0)
        })
    }
}
