//! Unix domain sockets (`AF_UNIX`): `SOCK_STREAM`, `SOCK_SEQPACKET` and
//! `SOCK_DGRAM`; `socketpair`, names in the filesystem (a socket node in
//! the overlay) or in the abstract namespace, `listen`/`accept`/`connect`,
//! `shutdown`, and file descriptions passed with the data (`SCM_RIGHTS`).
//! Linux: net/unix/af_unix.c, unix(7).
//!
//! Every socket owns an [`Inbox`]: the segments sent to it. A connected
//! socket sends into its peer's inbox. Inboxes never point at sockets, so
//! the object graph has no strong cycle (checkpointable as is).
//!
//! Nothing blocks: a send that does not fit, a receive from an empty
//! inbox, an accept with nothing pending return `EAGAIN`; the kernel waits
//! on [`UnixSocket::queue`] (the socket's own inbox queue).
//!
//! Waking writers (Linux `peer_wait` and `unix_dgram_peer_wake_relay`): a
//! sender that finds an inbox full (its send fails with `EAGAIN`, or a
//! poll of the sender sees no room) leaves its own inbox on the full
//! inbox's *room list*. Whatever frees room or makes sends fail (a
//! receive that dequeues, the owner's close or `SHUT_RD`) takes the list
//! and notifies each sender's queue with `EVENT_OUT`. This covers every
//! sender alike: the peer of a pair, a datagram socket `connect`ed to a
//! server that is not connected back, and `sendto` by address; the list is
//! one-shot (a sender still blocked registers again when it retries).
//!
//! Lock order: `UnixSocket::state` → `Inbox::state` (own, then peer's;
//! never two inboxes at once) → `WaitQueue`. Room-list wake-ups are sent
//! after the inbox lock is released.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use checkpoints::Stateify;

use crate::errno::{Errno, SysResult};
use crate::vfs::file::FileDescription;
use crate::waiter::{EventMask, WaitQueue, EVENT_ALL, EVENT_ERR, EVENT_HUP, EVENT_IN, EVENT_OUT};

/// Bytes an inbox holds (Linux's default `SO_RCVBUF`-sized budget).
pub const INBOX_CAPACITY: usize = 212_992;
/// Largest `listen` backlog (`somaxconn`).
pub const SOMAXCONN: usize = 4096;
/// Most file descriptions in one `SCM_RIGHTS` message (`SCM_MAX_FD`).
pub const SCM_MAX_FD: usize = 253;

/// Socket type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Stateify)]
pub enum SockType {
    Stream,
    SeqPacket,
    Dgram,
}

impl SockType {
    /// From `SOCK_*` (the type bits of `socket(2)`'s argument).
    pub fn from_raw(t: i32) -> SysResult<SockType> {
        match t {
            libc::SOCK_STREAM => Ok(SockType::Stream),
            libc::SOCK_SEQPACKET => Ok(SockType::SeqPacket),
            libc::SOCK_DGRAM => Ok(SockType::Dgram),
            _ => Err(Errno::new(libc::ESOCKTNOSUPPORT)),
        }
    }

    /// The `SOCK_*` value (`SO_TYPE`).
    pub fn raw(self) -> i32 {
        match self {
            SockType::Stream => libc::SOCK_STREAM,
            SockType::SeqPacket => libc::SOCK_SEQPACKET,
            SockType::Dgram => libc::SOCK_DGRAM,
        }
    }

    fn keeps_boundaries(self) -> bool {
        self != SockType::Stream
    }
}

/// An `AF_UNIX` address.
#[derive(Clone, Debug, PartialEq, Eq, Stateify)]
pub enum UnixAddr {
    /// No name (an unbound socket, or one end of a socketpair).
    Unnamed,
    /// A filesystem path (without the terminating NUL).
    Path(Vec<u8>),
    /// An abstract name (without the leading NUL).
    Abstract(Vec<u8>),
}

impl UnixAddr {
    /// Parses a `struct sockaddr_un` of `bytes.len()` bytes.
    pub fn from_sockaddr(bytes: &[u8]) -> SysResult<UnixAddr> {
        if bytes.len() < 2 || bytes.len() > std::mem::size_of::<libc::sockaddr_un>() {
            return Err(Errno::EINVAL.because("bad sockaddr_un length"));
        }
        if u16::from_le_bytes([bytes[0], bytes[1]]) != libc::AF_UNIX as u16 {
            return Err(Errno::EAFNOSUPPORT);
        }
        let path = &bytes[2..];
        match path.first() {
            None => Ok(UnixAddr::Unnamed),
            Some(0) => Ok(UnixAddr::Abstract(path[1..].to_vec())),
            Some(_) => {
                let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
                Ok(UnixAddr::Path(path[..end].to_vec()))
            }
        }
    }

    /// The `struct sockaddr_un` bytes `getsockname` returns (its length is
    /// the address length to report).
    pub fn to_sockaddr(&self) -> Vec<u8> {
        let mut b = (libc::AF_UNIX as u16).to_le_bytes().to_vec();
        match self {
            UnixAddr::Unnamed => {}
            UnixAddr::Path(p) => {
                b.extend_from_slice(p);
                b.push(0);
            }
            UnixAddr::Abstract(a) => {
                b.push(0);
                b.extend_from_slice(a);
            }
        }
        b
    }
}

/// One message (or, on a stream, one write) with what travels with it.
#[derive(Debug, Stateify)]
struct Segment {
    data: Vec<u8>,
    /// `SCM_RIGHTS`: descriptions in flight (kept open while queued).
    fds: Vec<Arc<FileDescription>>,
    /// The sender's address (datagrams).
    from: UnixAddr,
}

/// What a socket has been sent.
#[derive(Debug, Stateify)]
pub struct Inbox {
    state: Mutex<InboxState>,
    /// Waiters of the owning socket (`EVENT_IN` for data, `EVENT_OUT`
    /// for room in the peer). Host synchronization: not saved; waiters
    /// re-register after restore.
    #[state(nosave)]
    queue: WaitQueue,
}

#[derive(Debug, Default, Stateify)]
struct InboxState {
    segs: VecDeque<Segment>,
    bytes: usize,
    /// Connected sockets that send here (stream EOF when it drops to 0
    /// after a connection).
    writers: usize,
    /// The owner is gone: senders get `EPIPE`/`ECONNREFUSED`.
    closed: bool,
    /// The owner shut down reading.
    shut_rd: bool,
    /// The owner's credentials (what its peers read with `SO_PEERCRED`).
    cred: Option<Ucred>,
    /// Inboxes of the sockets that found this one full (a send failed
    /// with `EAGAIN`, or a poll saw no room): the next dequeue, close or
    /// `SHUT_RD` wakes their owners' `EVENT_OUT` waiters and empties the
    /// list (Linux `peer_wait`). Not saved: only waiters need it, and
    /// they are host objects that re-register after restore (a rewound
    /// send fails again and re-adds itself; a poll polls again).
    #[state(nosave)]
    room_waiters: Vec<Weak<Inbox>>,
}

/// `struct ucred`: a socket owner's pid, uid and gid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Stateify)]
pub struct Ucred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

impl Ucred {
    /// The 12-byte `struct ucred`.
    pub fn to_bytes(self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&self.pid.to_le_bytes());
        b[4..8].copy_from_slice(&self.uid.to_le_bytes());
        b[8..12].copy_from_slice(&self.gid.to_le_bytes());
        b
    }
}

impl Inbox {
    fn new() -> Arc<Inbox> {
        Arc::new(Inbox {
            state: Mutex::new(InboxState::default()),
            queue: WaitQueue::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, InboxState> {
        // Poisoning: every critical section leaves the state consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl InboxState {
    /// Puts `sender` (the inbox of a socket that found this one full) on
    /// the room list, once.
    fn want_room(&mut self, sender: &Arc<Inbox>) {
        self.room_waiters.retain(|w| w.strong_count() > 0);
        let me = Arc::as_ptr(sender);
        if !self
            .room_waiters
            .iter()
            .any(|w| std::ptr::eq(w.as_ptr(), me))
        {
            self.room_waiters.push(Arc::downgrade(sender));
        }
    }

    /// Empties the room list; pass the result to [`wake_room_waiters`]
    /// once the inbox lock is released.
    fn take_room_waiters(&mut self) -> Vec<Weak<Inbox>> {
        std::mem::take(&mut self.room_waiters)
    }
}

/// Wakes the writers of every inbox in `list` (taken from a room list):
/// there is room now, or sends fail at once. Linux
/// `unix_dgram_peer_wake_relay` → `wake_up_interruptible_poll(EPOLLOUT)`.
fn wake_room_waiters(list: Vec<Weak<Inbox>>, events: EventMask) {
    for w in list {
        if let Some(sender) = w.upgrade() {
            sender.queue.notify(events);
        }
    }
}

static NEXT_SOCKET_INO: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 20);

/// A Unix domain socket.
#[derive(Debug, Stateify)]
#[state(after_load = "reserve_ino")]
pub struct UnixSocket {
    /// Inode number (`socket:[ino]`, `fstat`).
    ino: u64,
    stype: SockType,
    inbox: Arc<Inbox>,
    state: Mutex<SockState>,
}

#[derive(Debug, Stateify)]
struct SockState {
    local: UnixAddr,
    peer: UnixAddr,
    /// Where sends go once connected.
    peer_inbox: Option<Arc<Inbox>>,
    /// The connection has been established (stream EOF applies).
    connected: bool,
    /// `listen` was called: pending server-side ends, oldest first.
    listening: Option<Listen>,
    shut_wr: bool,
}

#[derive(Debug, Stateify)]
struct Listen {
    backlog: usize,
    pending: VecDeque<Arc<FileDescription>>,
}

/// The name registry: bound names to their sockets.
#[derive(Debug, Default, Stateify)]
pub struct UnixNames {
    /// Key: abstract name, or a socket node's (dev, ino).
    names: Mutex<BTreeMap<NameKey, Weak<UnixSocket>>>,
}

/// A registry key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Stateify)]
pub enum NameKey {
    Abstract(Vec<u8>),
    Node { dev: u64, ino: u64 },
}

impl UnixNames {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<NameKey, Weak<UnixSocket>>> {
        // Poisoning: the map is always consistent.
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `sock` under `key`; `EADDRINUSE` if a live socket has it.
    pub fn insert(&self, key: NameKey, sock: &Arc<UnixSocket>) -> SysResult<()> {
        let mut m = self.lock();
        if m.get(&key)
            .and_then(Weak::upgrade)
            .is_some_and(|s| !s.is_closed())
        {
            return Err(Errno::EADDRINUSE);
        }
        m.retain(|_, w| w.upgrade().is_some_and(|s| !s.is_closed()));
        m.insert(key, Arc::downgrade(sock));
        Ok(())
    }

    /// The live (not closed) socket bound to `key`.
    pub fn get(&self, key: &NameKey) -> Option<Arc<UnixSocket>> {
        self.lock()
            .get(key)
            .and_then(Weak::upgrade)
            .filter(|s| !s.is_closed())
    }
}

/// What a receive returned.
#[derive(Debug)]
pub struct Received {
    pub data: Vec<u8>,
    /// The message's full length (larger than `data` when truncated;
    /// `MSG_TRUNC`).
    pub full_len: usize,
    pub fds: Vec<Arc<FileDescription>>,
    pub from: UnixAddr,
}

impl UnixSocket {
    /// A new unconnected socket.
    pub fn new(stype: SockType) -> Arc<UnixSocket> {
        Arc::new(UnixSocket {
            ino: NEXT_SOCKET_INO.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            stype,
            inbox: Inbox::new(),
            state: Mutex::new(SockState {
                local: UnixAddr::Unnamed,
                peer: UnixAddr::Unnamed,
                peer_inbox: None,
                connected: false,
                listening: None,
                shut_wr: false,
            }),
        })
    }

    /// A connected pair (`socketpair(2)`).
    pub fn pair(stype: SockType) -> (Arc<UnixSocket>, Arc<UnixSocket>) {
        let a = UnixSocket::new(stype);
        let b = UnixSocket::new(stype);
        UnixSocket::join(&a, &b, UnixAddr::Unnamed, UnixAddr::Unnamed);
        (a, b)
    }

    /// Connects `a` and `b` to each other (`a` sees `b` as `b_name`).
    fn join(a: &Arc<UnixSocket>, b: &Arc<UnixSocket>, a_name: UnixAddr, b_name: UnixAddr) {
        for (me, other, other_name) in [(a, b, &b_name), (b, a, &a_name)] {
            let mut s = me.lock();
            s.peer_inbox = Some(other.inbox.clone());
            s.peer = other_name.clone();
            s.connected = true;
            other.inbox.lock().writers += 1;
        }
        a.lock().local = a_name;
        b.lock().local = b_name;
    }

    /// after_load: new sockets must not reuse a restored socket's inode.
    fn reserve_ino(&self) {
        NEXT_SOCKET_INO.fetch_max(self.ino + 1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The socket's inode number.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    fn lock(&self) -> MutexGuard<'_, SockState> {
        // Poisoning: every critical section leaves the state consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the creating (or listening) process's credentials, which
    /// peers see with `SO_PEERCRED`. Linux takes them at `socket`,
    /// `socketpair`, `listen` and `connect`.
    pub fn set_cred(&self, cred: Ucred) {
        self.inbox.lock().cred = Some(cred);
    }

    /// `SO_PEERCRED`: the peer's credentials; `ENOTCONN` when there is no
    /// peer. A peer that never recorded any reports pid 0, uid/gid -1
    /// (Linux's "no credentials").
    pub fn peer_cred(&self) -> SysResult<Ucred> {
        let peer = self.lock().peer_inbox.clone().ok_or(Errno::ENOTCONN)?;
        let c = peer.lock().cred;
        Ok(c.unwrap_or(Ucred {
            pid: 0,
            uid: u32::MAX,
            gid: u32::MAX,
        }))
    }

    /// Whether the owning file description was closed.
    pub fn is_closed(&self) -> bool {
        self.inbox.lock().closed
    }

    /// The socket type.
    pub fn sock_type(&self) -> SockType {
        self.stype
    }

    /// The queue the owner's waiters sleep on.
    pub fn queue(&self) -> &WaitQueue {
        &self.inbox.queue
    }

    /// `getsockname(2)`.
    pub fn local_name(&self) -> UnixAddr {
        self.lock().local.clone()
    }

    /// `getpeername(2)`; `ENOTCONN` when not connected.
    pub fn peer_name(&self) -> SysResult<UnixAddr> {
        let s = self.lock();
        if s.peer_inbox.is_none() {
            return Err(Errno::ENOTCONN);
        }
        Ok(s.peer.clone())
    }

    /// Names the socket (the caller created the socket node for a path
    /// name and gives its registry key).
    pub fn bind(
        self: &Arc<UnixSocket>,
        names: &UnixNames,
        addr: UnixAddr,
        key: NameKey,
    ) -> SysResult<()> {
        if self.lock().local != UnixAddr::Unnamed {
            return Err(Errno::EINVAL.because("socket already bound"));
        }
        names.insert(key, self)?;
        self.lock().local = addr;
        Ok(())
    }

    /// `listen(2)`.
    pub fn listen(&self, backlog: i32) -> SysResult<()> {
        if self.stype == SockType::Dgram {
            return Err(Errno::EOPNOTSUPP);
        }
        let mut s = self.lock();
        if s.connected {
            return Err(Errno::EINVAL.because("listen on a connected socket"));
        }
        if s.local == UnixAddr::Unnamed {
            return Err(Errno::EINVAL.because("listen on an unbound socket"));
        }
        let backlog = (backlog.max(0) as usize).min(SOMAXCONN);
        match &mut s.listening {
            Some(l) => l.backlog = backlog,
            None => {
                s.listening = Some(Listen {
                    backlog,
                    pending: VecDeque::new(),
                })
            }
        }
        Ok(())
    }

    /// `connect(2)` to `target` (found by the caller through the name
    /// registry), which the caller knows as `target_name`.
    /// `make_fd` wraps the new server-side socket in a file description.
    pub fn connect(
        self: &Arc<UnixSocket>,
        target: &Arc<UnixSocket>,
        target_name: UnixAddr,
        make_fd: impl FnOnce(Arc<UnixSocket>) -> Arc<FileDescription>,
    ) -> SysResult<()> {
        if target.stype != self.stype {
            return Err(Errno::new(libc::EPROTOTYPE));
        }
        if self.stype == SockType::Dgram {
            let mut s = self.lock();
            s.peer_inbox = Some(target.inbox.clone());
            s.peer = target_name;
            return Ok(());
        }
        {
            let s = self.lock();
            if s.connected {
                return Err(Errno::EISCONN);
            }
            if s.listening.is_some() {
                return Err(Errno::EINVAL.because("connect on a listening socket"));
            }
        }
        let server = UnixSocket::new(self.stype);
        // The accepted socket speaks for the listener.
        let listener_cred = target.inbox.lock().cred;
        server.inbox.lock().cred = listener_cred;
        {
            let mut t = target.lock();
            let Some(l) = t.listening.as_mut() else {
                return Err(Errno::ECONNREFUSED.because("not listening"));
            };
            if l.pending.len() > l.backlog {
                return Err(Errno::EAGAIN.because("listen backlog full"));
            }
            let client_name = self.lock().local.clone();
            UnixSocket::join(&server, self, target_name, client_name);
            l.pending.push_back(make_fd(server));
        }
        target.inbox.queue.notify(EVENT_IN);
        Ok(())
    }

    /// `accept(2)`: the oldest pending connection; `EAGAIN` if none.
    pub fn accept(&self) -> SysResult<Arc<FileDescription>> {
        let mut s = self.lock();
        let l = s
            .listening
            .as_mut()
            .ok_or(Errno::EINVAL.because("accept on a non-listening socket"))?;
        l.pending.pop_front().ok_or(Errno::EAGAIN)
    }

    /// `shutdown(2)`: `how` is `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`.
    pub fn shutdown(&self, how: i32) -> SysResult<()> {
        let (rd, wr) = match how {
            libc::SHUT_RD => (true, false),
            libc::SHUT_WR => (false, true),
            libc::SHUT_RDWR => (true, true),
            _ => return Err(Errno::EINVAL.because("bad shutdown how")),
        };
        let mut s = self.lock();
        if s.peer_inbox.is_none() && self.stype != SockType::Dgram {
            return Err(Errno::ENOTCONN);
        }
        if wr && !s.shut_wr {
            s.shut_wr = true;
            if let Some(p) = &s.peer_inbox {
                let mut ps = p.lock();
                ps.writers = ps.writers.saturating_sub(1);
                drop(ps);
                p.queue.notify(EVENT_ALL);
            }
        }
        drop(s);
        if rd {
            let senders = {
                let mut d = self.inbox.lock();
                d.shut_rd = true;
                d.take_room_waiters()
            };
            self.inbox.queue.notify(EVENT_ALL);
            // Blocked senders now fail (EPIPE / ECONNREFUSED).
            wake_room_waiters(senders, EVENT_ALL);
        }
        Ok(())
    }

    /// Sends `data` with `fds` to the peer, or to `to` (an unconnected
    /// datagram socket; the caller resolved the name).
    pub fn send(
        &self,
        data: &[u8],
        fds: Vec<Arc<FileDescription>>,
        to: Option<&Arc<UnixSocket>>,
    ) -> SysResult<usize> {
        if fds.len() > SCM_MAX_FD {
            return Err(Errno::EINVAL.because("too many SCM_RIGHTS fds"));
        }
        let s = self.lock();
        let dest = match (to, &s.peer_inbox) {
            (Some(t), _) if self.stype == SockType::Dgram => {
                if t.stype != SockType::Dgram {
                    return Err(Errno::new(libc::EPROTOTYPE));
                }
                t.inbox.clone()
            }
            (Some(_), Some(_)) => return Err(Errno::EISCONN),
            (Some(_), None) => return Err(Errno::EOPNOTSUPP),
            (None, Some(p)) => p.clone(),
            (None, None) if self.stype == SockType::Dgram => return Err(Errno::EDESTADDRREQ),
            (None, None) => return Err(Errno::ENOTCONN),
        };
        if s.shut_wr {
            return Err(Errno::EPIPE);
        }
        let from = s.local.clone();
        drop(s);
        let mut d = dest.lock();
        if d.closed || d.shut_rd {
            return Err(if self.stype == SockType::Dgram {
                Errno::ECONNREFUSED
            } else {
                Errno::EPIPE
            });
        }
        let free = INBOX_CAPACITY.saturating_sub(d.bytes);
        let n = if self.stype.keeps_boundaries() {
            if data.len() > INBOX_CAPACITY {
                return Err(Errno::EMSGSIZE);
            }
            if data.len() > free {
                d.want_room(&self.inbox);
                return Err(Errno::EAGAIN);
            }
            data.len()
        } else {
            if free == 0 && !data.is_empty() {
                d.want_room(&self.inbox);
                return Err(Errno::EAGAIN);
            }
            data.len().min(free)
        };
        if n == 0 && fds.is_empty() && !self.stype.keeps_boundaries() {
            return Ok(0);
        }
        d.bytes += n;
        d.segs.push_back(Segment {
            data: data[..n].to_vec(),
            fds,
            from,
        });
        drop(d);
        dest.queue.notify(EVENT_IN);
        Ok(n)
    }

    /// Receives up to `max` bytes (`peek`: leave them queued). `Ok` with
    /// empty data and `full_len == 0` is end of file on a connected
    /// stream or seqpacket socket; `EAGAIN` means "would block".
    pub fn recv(&self, max: usize, peek: bool) -> SysResult<Received> {
        let connected = self.lock().connected;
        if self.stype == SockType::Stream && !connected {
            return Err(Errno::EINVAL.because("recv on an unconnected stream socket"));
        }
        let mut d = self.inbox.lock();
        if d.segs.is_empty() {
            let eof = d.shut_rd || (connected && d.writers == 0);
            return if eof && self.stype != SockType::Dgram {
                Ok(Received {
                    data: Vec::new(),
                    full_len: 0,
                    fds: Vec::new(),
                    from: UnixAddr::Unnamed,
                })
            } else {
                Err(Errno::EAGAIN)
            };
        }
        let got = if self.stype.keeps_boundaries() {
            Self::take_message(&mut d, max, peek)
        } else {
            Self::take_stream(&mut d, max, peek)
        };
        // Room was freed: wake the senders that found the inbox full
        // (Linux `unix_dgram_recvmsg` wakes `peer_wait`; for streams the
        // freed skb's `sk_write_space` wakes the writer).
        let senders = if peek {
            Vec::new()
        } else {
            d.take_room_waiters()
        };
        drop(d);
        wake_room_waiters(senders, EVENT_OUT);
        Ok(got)
    }

    fn take_message(d: &mut InboxState, max: usize, peek: bool) -> Received {
        let (data, full_len, fds, from) = {
            // Non-empty: checked by the caller.
            let Some(seg) = d.segs.front() else {
                return Received {
                    data: Vec::new(),
                    full_len: 0,
                    fds: Vec::new(),
                    from: UnixAddr::Unnamed,
                };
            };
            let n = seg.data.len().min(max);
            (
                seg.data[..n].to_vec(),
                seg.data.len(),
                seg.fds.clone(),
                seg.from.clone(),
            )
        };
        if !peek {
            d.segs.pop_front();
            d.bytes -= full_len;
        }
        Received {
            data,
            full_len,
            fds,
            from,
        }
    }

    fn take_stream(d: &mut InboxState, max: usize, peek: bool) -> Received {
        let mut data = Vec::new();
        let mut fds = Vec::new();
        let mut whole = 0;
        let mut partial = 0;
        for (i, seg) in d.segs.iter().enumerate() {
            if data.len() == max {
                break;
            }
            // Descriptions travel with the first byte of their segment: a
            // later segment carrying some starts the next read.
            if i > 0 && !seg.fds.is_empty() {
                break;
            }
            let n = seg.data.len().min(max - data.len());
            data.extend_from_slice(&seg.data[..n]);
            if i == 0 {
                fds = seg.fds.clone();
            }
            if n < seg.data.len() {
                partial = n;
                break;
            }
            whole += 1;
            if !fds.is_empty() {
                break;
            }
        }
        if !peek {
            for _ in 0..whole {
                if let Some(seg) = d.segs.pop_front() {
                    d.bytes -= seg.data.len();
                }
            }
            if let (true, Some(seg)) = (partial > 0, d.segs.front_mut()) {
                seg.data.drain(..partial);
                seg.fds.clear();
                d.bytes -= partial;
            }
        }
        let full_len = data.len();
        Received {
            data,
            full_len,
            fds,
            from: UnixAddr::Unnamed,
        }
    }

    /// Bytes waiting (`FIONREAD`/`SIOCINQ`): the next message's size on
    /// message sockets.
    pub fn readable_bytes(&self) -> usize {
        let d = self.inbox.lock();
        if self.stype.keeps_boundaries() {
            d.segs.front().map_or(0, |s| s.data.len())
        } else {
            d.bytes
        }
    }

    /// Ready events among `mask`. Linux: `unix_poll`, `unix_dgram_poll`.
    pub fn readiness(&self, mask: EventMask) -> EventMask {
        let s = self.lock();
        let mut ev = 0;
        if let Some(l) = &s.listening {
            if !l.pending.is_empty() {
                ev |= EVENT_IN;
            }
            return ev & mask;
        }
        let (has_data, eof) = {
            let d = self.inbox.lock();
            (
                !d.segs.is_empty(),
                d.shut_rd || (s.connected && d.writers == 0),
            )
        };
        if has_data || (eof && self.stype != SockType::Dgram) {
            ev |= EVENT_IN;
        }
        match &s.peer_inbox {
            Some(p) => {
                let mut pd = p.lock();
                if pd.closed {
                    ev |= if self.stype == SockType::Dgram {
                        EVENT_ERR
                    } else {
                        EVENT_HUP
                    };
                } else if !s.shut_wr && pd.bytes < INBOX_CAPACITY {
                    ev |= EVENT_OUT;
                } else if !s.shut_wr && mask & EVENT_OUT != 0 {
                    // Full: a poller wants to hear when room is freed
                    // (Linux `unix_dgram_peer_wake_me`).
                    pd.want_room(&self.inbox);
                }
            }
            None if self.stype == SockType::Dgram => ev |= EVENT_OUT,
            None => {}
        }
        if eof && s.shut_wr {
            ev |= EVENT_HUP;
        }
        ev & (mask | EVENT_ERR | EVENT_HUP)
    }

    /// The owner's file description is gone: peers see EOF / `EPIPE`,
    /// pending connections are dropped.
    pub(crate) fn release(&self) {
        let mut s = self.lock();
        let peer = s.peer_inbox.take();
        let pending = s.listening.take();
        let shut_wr = s.shut_wr;
        drop(s);
        let (in_flight, senders) = {
            let mut d = self.inbox.lock();
            d.closed = true;
            d.bytes = 0;
            (std::mem::take(&mut d.segs), d.take_room_waiters())
        };
        // Descriptions in flight to a closed socket are dropped, outside
        // the inbox lock: one of them may be a socket whose release locks
        // this very inbox (its peer).
        drop(in_flight);
        self.inbox.queue.notify(EVENT_ALL);
        // Blocked senders now fail (ECONNREFUSED / EPIPE); Linux
        // `unix_release_sock` wakes `peer_wait` too.
        wake_room_waiters(senders, EVENT_ALL);
        if let Some(p) = peer {
            if !shut_wr && self.stype != SockType::Dgram {
                let mut pd = p.lock();
                pd.writers = pd.writers.saturating_sub(1);
            }
            p.queue.notify(EVENT_ALL);
        }
        drop(pending);
    }
}

/// A socket owned by a file description; releases it on drop.
#[derive(Debug, Stateify)]
pub struct SocketEnd {
    sock: Arc<UnixSocket>,
}

impl SocketEnd {
    /// Wraps `sock`.
    pub fn new(sock: Arc<UnixSocket>) -> SocketEnd {
        SocketEnd { sock }
    }

    /// The socket.
    pub fn socket(&self) -> &Arc<UnixSocket> {
        &self.sock
    }
}

impl Drop for SocketEnd {
    fn drop(&mut self) {
        self.sock.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::waiter::{Registration, WaitOutcome, Waiter};
    use std::time::Instant;

    fn pair(t: SockType) -> (Arc<FileDescription>, Arc<FileDescription>) {
        FileDescription::new_unix_pair(t, 0)
    }

    fn sock(f: &Arc<FileDescription>) -> &Arc<UnixSocket> {
        f.socket().unwrap()
    }

    #[test]
    fn stream_pair_carries_bytes_both_ways_then_eof_and_epipe() {
        let (a, b) = pair(SockType::Stream);
        assert_eq!(a.write(b"ping").unwrap(), 4);
        assert_eq!(b.write(b"pong!").unwrap(), 5);
        let mut buf = [0u8; 16];
        assert_eq!(b.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"ping");
        assert_eq!(a.read(&mut buf).unwrap(), 5);
        assert_eq!(b.read(&mut buf).unwrap_err().code(), libc::EAGAIN);
        drop(a);
        assert_eq!(b.read(&mut buf).unwrap(), 0);
        assert_eq!(b.write(b"x").unwrap_err(), Errno::EPIPE);
    }

    #[test]
    fn stream_reads_merge_writes_message_sockets_keep_boundaries() {
        let (a, b) = pair(SockType::Stream);
        a.write(b"ab").unwrap();
        a.write(b"cd").unwrap();
        let mut buf = [0u8; 3];
        assert_eq!(b.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf, b"abc");
        assert_eq!(b.read(&mut buf).unwrap(), 1);

        let (a, b) = pair(SockType::SeqPacket);
        a.write(b"first").unwrap();
        a.write(b"second").unwrap();
        let got = sock(&b).recv(3, false).unwrap();
        assert_eq!((got.data.as_slice(), got.full_len), (&b"fir"[..], 5));
        assert_eq!(sock(&b).recv(64, false).unwrap().data, b"second");
    }

    #[test]
    fn shutdown_write_gives_the_peer_eof() {
        let (a, b) = pair(SockType::Stream);
        a.write(b"last").unwrap();
        sock(&a).shutdown(libc::SHUT_WR).unwrap();
        assert_eq!(a.write(b"more").unwrap_err(), Errno::EPIPE);
        let mut buf = [0u8; 8];
        assert_eq!(b.read(&mut buf).unwrap(), 4);
        assert_eq!(b.read(&mut buf).unwrap(), 0);
        assert_ne!(b.readiness(EVENT_IN) & EVENT_IN, 0);
    }

    #[test]
    fn scm_rights_passes_a_pipe_end_with_the_first_byte() {
        let (a, b) = pair(SockType::Stream);
        let (pr, pw) = FileDescription::new_pipe(0);
        sock(&a).send(b"x", vec![pr], None).unwrap();
        a.write(b"yz").unwrap();
        let got = sock(&b).recv(16, false).unwrap();
        assert_eq!(got.data, b"x");
        assert_eq!(got.fds.len(), 1);
        pw.write(b"through").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(got.fds[0].read(&mut buf).unwrap(), 7);
        let rest = sock(&b).recv(16, false).unwrap();
        assert_eq!((rest.data.as_slice(), rest.fds.len()), (&b"yz"[..], 0));
    }

    #[test]
    fn full_inbox_would_block_and_a_read_wakes_the_writer() {
        let (a, b) = pair(SockType::Stream);
        let big = vec![7u8; INBOX_CAPACITY];
        assert_eq!(a.write(&big).unwrap(), INBOX_CAPACITY);
        assert_eq!(a.write(b"x").unwrap_err().code(), libc::EAGAIN);
        assert_eq!(a.readiness(EVENT_OUT), 0);
        let w = Waiter::new();
        let _r = Registration::new(a.wait_queue().unwrap(), &w, EVENT_OUT);
        b.read(&mut [0u8; 100]).unwrap();
        assert_eq!(w.wait(Some(Instant::now())), WaitOutcome::Woken);
        assert_eq!(a.readiness(EVENT_OUT), EVENT_OUT);
    }

    #[test]
    fn listen_connect_accept_through_the_name_registry() {
        let names = UnixNames::default();
        let server = FileDescription::new_unix_socket(SockType::Stream, 0);
        let addr = UnixAddr::Abstract(b"svc".to_vec());
        sock(&server)
            .bind(&names, addr.clone(), NameKey::Abstract(b"svc".to_vec()))
            .unwrap();
        let client = FileDescription::new_unix_socket(SockType::Stream, 0);
        let target = names.get(&NameKey::Abstract(b"svc".to_vec())).unwrap();
        // Not listening yet.
        let err = sock(&client)
            .connect(&target, addr.clone(), |s| FileDescription::new_socket(s, 0))
            .unwrap_err();
        assert_eq!(err.code(), libc::ECONNREFUSED);
        sock(&server).listen(8).unwrap();
        assert_eq!(sock(&server).accept().unwrap_err().code(), libc::EAGAIN);
        sock(&client)
            .connect(&target, addr.clone(), |s| FileDescription::new_socket(s, 0))
            .unwrap();
        assert_eq!(server.readiness(EVENT_IN), EVENT_IN);
        let conn = sock(&server).accept().unwrap();
        client.write(b"hello").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(conn.read(&mut buf).unwrap(), 5);
        assert_eq!(sock(&client).peer_name().unwrap(), addr);
        assert_eq!(sock(&conn).local_name(), addr);
        // A second bind of the name fails while the server lives.
        let other = UnixSocket::new(SockType::Stream);
        assert_eq!(
            other
                .bind(&names, addr.clone(), NameKey::Abstract(b"svc".to_vec()))
                .unwrap_err(),
            Errno::EADDRINUSE
        );
        drop(server);
        assert!(names.get(&NameKey::Abstract(b"svc".to_vec())).is_none());
    }

    #[test]
    fn unconnected_datagrams_go_to_the_named_socket_with_sender_address() {
        let names = UnixNames::default();
        let rx = FileDescription::new_unix_socket(SockType::Dgram, 0);
        let rx_addr = UnixAddr::Abstract(b"rx".to_vec());
        sock(&rx)
            .bind(&names, rx_addr, NameKey::Abstract(b"rx".to_vec()))
            .unwrap();
        let tx = FileDescription::new_unix_socket(SockType::Dgram, 0);
        let tx_addr = UnixAddr::Abstract(b"tx".to_vec());
        sock(&tx)
            .bind(&names, tx_addr.clone(), NameKey::Abstract(b"tx".to_vec()))
            .unwrap();
        assert_eq!(tx.write(b"x").unwrap_err().code(), libc::EDESTADDRREQ);
        let dest = names.get(&NameKey::Abstract(b"rx".to_vec())).unwrap();
        sock(&tx).send(b"d1", Vec::new(), Some(&dest)).unwrap();
        sock(&tx).send(b"d2", Vec::new(), Some(&dest)).unwrap();
        let got = sock(&rx).recv(64, false).unwrap();
        assert_eq!((got.data.as_slice(), got.from), (&b"d1"[..], tx_addr));
        assert_eq!(sock(&rx).recv(64, false).unwrap().data, b"d2");
        assert_eq!(sock(&rx).recv(64, false).unwrap_err().code(), libc::EAGAIN);
        drop(rx);
        assert_eq!(
            sock(&tx).send(b"d3", Vec::new(), Some(&dest)).unwrap_err(),
            Errno::ECONNREFUSED
        );
    }

    #[test]
    fn sockaddr_un_round_trips_paths_and_abstract_names() {
        let p = UnixAddr::Path(b"/run/s".to_vec());
        assert_eq!(UnixAddr::from_sockaddr(&p.to_sockaddr()).unwrap(), p);
        let a = UnixAddr::Abstract(b"x\0y".to_vec());
        assert_eq!(UnixAddr::from_sockaddr(&a.to_sockaddr()).unwrap(), a);
        assert_eq!(UnixAddr::from_sockaddr(&[1, 0]).unwrap(), UnixAddr::Unnamed);
        assert_eq!(
            UnixAddr::from_sockaddr(&[2, 0, b'a']).unwrap_err(),
            Errno::EAFNOSUPPORT
        );
    }
}

#[cfg(test)]
mod release_tests {
    use super::*;

    #[test]
    fn closing_a_socket_holding_its_peer_in_flight_does_not_deadlock() {
        let (a, b) = FileDescription::new_unix_pair(SockType::Stream, 0);
        // a sends its own description to b, then the sender's reference goes.
        a.socket()
            .unwrap()
            .send(b"x", vec![a.clone()], None)
            .unwrap();
        drop(a);
        // b's release drops a (its peer), whose release touches b's inbox.
        drop(b);
    }
}

#[cfg(test)]
mod cred_tests {
    use super::*;

    #[test]
    fn peer_credentials_follow_the_connection() {
        let names = UnixNames::default();
        let server = UnixSocket::new(SockType::Stream);
        server.set_cred(Ucred {
            pid: 1,
            uid: 0,
            gid: 0,
        });
        server
            .bind(
                &names,
                UnixAddr::Abstract(b"c".to_vec()),
                NameKey::Abstract(b"c".to_vec()),
            )
            .unwrap();
        server.listen(1).unwrap();
        let client = UnixSocket::new(SockType::Stream);
        client.set_cred(Ucred {
            pid: 42,
            uid: 1000,
            gid: 100,
        });
        assert_eq!(client.peer_cred().unwrap_err(), Errno::ENOTCONN);
        client
            .connect(&server, UnixAddr::Abstract(b"c".to_vec()), |s| {
                FileDescription::new_socket(s, 0)
            })
            .unwrap();
        let conn = server.accept().unwrap();
        assert_eq!(
            client.peer_cred().unwrap(),
            Ucred {
                pid: 1,
                uid: 0,
                gid: 0
            }
        );
        assert_eq!(
            conn.socket().unwrap().peer_cred().unwrap(),
            Ucred {
                pid: 42,
                uid: 1000,
                gid: 100
            }
        );
        assert_eq!(
            Ucred {
                pid: 42,
                uid: 1000,
                gid: 100
            }
            .to_bytes()[0..4],
            42i32.to_le_bytes()
        );
    }
}

#[cfg(test)]
mod room_tests {
    //! Writers blocked on a full inbox are woken by the receiver's dequeue
    //! or close, whatever connects them (Linux `peer_wait`).
    use super::*;
    use crate::waiter::{Registration, WaitOutcome, Waiter};
    use std::time::Instant;

    /// A datagram that fills an empty inbox in one go.
    fn whole_inbox() -> Vec<u8> {
        vec![1u8; INBOX_CAPACITY]
    }

    /// A named datagram server and a client `connect`ed to it; the server
    /// is not connected back (its receive has no peer to notify).
    fn server_and_client() -> (Arc<UnixSocket>, Arc<UnixSocket>) {
        let names = UnixNames::default();
        let server = UnixSocket::new(SockType::Dgram);
        let key = NameKey::Abstract(b"srv".to_vec());
        let addr = UnixAddr::Abstract(b"srv".to_vec());
        server.bind(&names, addr.clone(), key).unwrap();
        let client = UnixSocket::new(SockType::Dgram);
        client
            .connect(&server, addr, |s| FileDescription::new_socket(s, 0))
            .unwrap();
        (server, client)
    }

    #[test]
    fn dequeue_wakes_a_connected_datagram_sender_the_server_does_not_know() {
        let (server, client) = server_and_client();
        client.send(&whole_inbox(), Vec::new(), None).unwrap();
        assert_eq!(
            client.send(b"x", Vec::new(), None).unwrap_err().code(),
            libc::EAGAIN
        );
        let w = Waiter::new();
        let _r = Registration::new(client.queue(), &w, EVENT_OUT);

        server.recv(16, false).unwrap();

        assert_eq!(w.wait(Some(Instant::now())), WaitOutcome::Woken);
        assert_eq!(client.send(b"x", Vec::new(), None).unwrap(), 1);
    }

    #[test]
    fn dequeue_wakes_a_sender_by_address() {
        let (server, _client) = server_and_client();
        let tx = UnixSocket::new(SockType::Dgram);
        tx.send(&whole_inbox(), Vec::new(), Some(&server)).unwrap();
        assert_eq!(
            tx.send(b"x", Vec::new(), Some(&server)).unwrap_err().code(),
            libc::EAGAIN
        );
        let w = Waiter::new();
        let _r = Registration::new(tx.queue(), &w, EVENT_OUT);

        server.recv(16, false).unwrap();

        assert_eq!(w.wait(Some(Instant::now())), WaitOutcome::Woken);
    }

    #[test]
    fn a_peek_frees_nothing_and_wakes_no_sender() {
        let (server, client) = server_and_client();
        client.send(&whole_inbox(), Vec::new(), None).unwrap();
        assert!(client.send(b"x", Vec::new(), None).is_err());
        let w = Waiter::new();
        let _r = Registration::new(client.queue(), &w, EVENT_OUT);

        server.recv(16, true).unwrap();

        assert_eq!(w.wait(Some(Instant::now())), WaitOutcome::TimedOut);
    }

    #[test]
    fn poll_of_a_full_connected_datagram_socket_wakes_on_dequeue() {
        let (server, client) = server_and_client();
        client.send(&whole_inbox(), Vec::new(), None).unwrap();
        let w = Waiter::new();
        let _r = Registration::new(client.queue(), &w, EVENT_OUT);
        assert_eq!(client.readiness(EVENT_OUT), 0);

        server.recv(16, false).unwrap();

        assert_eq!(w.wait(Some(Instant::now())), WaitOutcome::Woken);
        assert_eq!(client.readiness(EVENT_OUT), EVENT_OUT);
    }

    #[test]
    fn closing_the_receiver_wakes_a_blocked_sender_which_then_fails() {
        let (server, client) = server_and_client();
        client.send(&whole_inbox(), Vec::new(), None).unwrap();
        assert!(client.send(b"x", Vec::new(), None).is_err());
        let w = Waiter::new();
        let _r = Registration::new(client.queue(), &w, EVENT_OUT);

        server.release();

        assert_eq!(w.wait(Some(Instant::now())), WaitOutcome::Woken);
        assert_eq!(
            client.send(b"x", Vec::new(), None).unwrap_err(),
            Errno::ECONNREFUSED
        );
    }

    #[test]
    fn the_room_list_is_one_shot_and_holds_a_sender_once() {
        let (server, client) = server_and_client();
        client.send(&whole_inbox(), Vec::new(), None).unwrap();
        for _ in 0..3 {
            assert!(client.send(b"x", Vec::new(), None).is_err());
        }
        assert_eq!(server.inbox.lock().room_waiters.len(), 1);
        server.recv(16, false).unwrap();
        assert!(server.inbox.lock().room_waiters.is_empty());
    }
}
