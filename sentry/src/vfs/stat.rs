//! File metadata as the guest sees it, and the exact x86-64 byte layouts
//! of `struct stat` and `struct statx`, so the stat system calls only copy
//! bytes out. Linux: arch/x86/include/uapi/asm/stat.h,
//! include/uapi/linux/stat.h.

use std::time::{SystemTime, UNIX_EPOCH};

use checkpoints::Stateify;

/// The file type bits of `st_mode` (`S_IFMT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Stateify)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl FileType {
    /// The `S_IF*` bits.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileType::Regular => libc::S_IFREG,
            FileType::Directory => libc::S_IFDIR,
            FileType::Symlink => libc::S_IFLNK,
            FileType::CharDevice => libc::S_IFCHR,
            FileType::BlockDevice => libc::S_IFBLK,
            FileType::Fifo => libc::S_IFIFO,
            FileType::Socket => libc::S_IFSOCK,
        }
    }

    /// The type encoded in a full `st_mode`, if valid.
    pub fn from_mode(mode: u32) -> Option<FileType> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG => FileType::Regular,
            libc::S_IFDIR => FileType::Directory,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFCHR => FileType::CharDevice,
            libc::S_IFBLK => FileType::BlockDevice,
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFSOCK => FileType::Socket,
            _ => return None,
        })
    }

    /// The `d_type` of a `linux_dirent64` (`DT_*`).
    pub fn dirent_type(self) -> u8 {
        match self {
            FileType::Regular => libc::DT_REG,
            FileType::Directory => libc::DT_DIR,
            FileType::Symlink => libc::DT_LNK,
            FileType::CharDevice => libc::DT_CHR,
            FileType::BlockDevice => libc::DT_BLK,
            FileType::Fifo => libc::DT_FIFO,
            FileType::Socket => libc::DT_SOCK,
        }
    }
}

/// A `struct timespec`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Stateify)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: i64,
}

impl Timespec {
    /// The host's `CLOCK_REALTIME` now.
    pub fn now() -> Timespec {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => Timespec {
                sec: d.as_secs() as i64,
                nsec: i64::from(d.subsec_nanos()),
            },
            // A host clock before 1970: report the epoch.
            Err(_) => Timespec::default(),
        }
    }
}

/// Everything `stat(2)` reports about a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Stateify)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    /// Full mode: type bits and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: i64,
    pub blksize: i64,
    pub blocks: i64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
}

/// Size of the x86-64 `struct stat`.
pub const STAT_SIZE: usize = 144;
/// Size of `struct statx`.
pub const STATX_SIZE: usize = 256;
/// `STATX_BASIC_STATS`: the fields we fill in.
pub const STATX_BASIC_STATS: u32 = 0x7ff;

/// Splits a Linux `dev_t` into (major, minor). Linux: include/linux/kdev_t.h
/// (`new_decode_dev`, the userspace `gnu_dev_major/minor` encoding).
pub fn dev_split(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

/// Builds a `dev_t` from (major, minor), the inverse of [`dev_split`].
pub fn dev_make(major: u32, minor: u32) -> u64 {
    let (ma, mi) = (u64::from(major), u64::from(minor));
    ((ma & 0xfff) << 8) | ((ma & !0xfff) << 32) | (mi & 0xff) | ((mi & !0xff) << 12)
}

fn put(buf: &mut [u8], off: usize, bytes: &[u8]) {
    buf[off..off + bytes.len()].copy_from_slice(bytes);
}

impl Stat {
    /// The file type from `mode`.
    pub fn file_type(&self) -> Option<FileType> {
        FileType::from_mode(self.mode)
    }

    /// The x86-64 `struct stat` bytes.
    pub fn to_bytes(&self) -> [u8; STAT_SIZE] {
        let mut b = [0u8; STAT_SIZE];
        put(&mut b, 0, &self.dev.to_le_bytes());
        put(&mut b, 8, &self.ino.to_le_bytes());
        put(&mut b, 16, &self.nlink.to_le_bytes());
        put(&mut b, 24, &self.mode.to_le_bytes());
        put(&mut b, 28, &self.uid.to_le_bytes());
        put(&mut b, 32, &self.gid.to_le_bytes());
        put(&mut b, 40, &self.rdev.to_le_bytes());
        put(&mut b, 48, &self.size.to_le_bytes());
        put(&mut b, 56, &self.blksize.to_le_bytes());
        put(&mut b, 64, &self.blocks.to_le_bytes());
        for (off, t) in [(72, self.atime), (88, self.mtime), (104, self.ctime)] {
            put(&mut b, off, &t.sec.to_le_bytes());
            put(&mut b, off + 8, &t.nsec.to_le_bytes());
        }
        b
    }

    /// The `struct statx` bytes with [`STATX_BASIC_STATS`] filled in.
    pub fn to_statx_bytes(&self) -> [u8; STATX_SIZE] {
        let mut b = [0u8; STATX_SIZE];
        put(&mut b, 0, &STATX_BASIC_STATS.to_le_bytes());
        put(&mut b, 4, &(self.blksize as u32).to_le_bytes());
        put(&mut b, 16, &(self.nlink as u32).to_le_bytes());
        put(&mut b, 20, &self.uid.to_le_bytes());
        put(&mut b, 24, &self.gid.to_le_bytes());
        put(&mut b, 28, &(self.mode as u16).to_le_bytes());
        put(&mut b, 32, &self.ino.to_le_bytes());
        put(&mut b, 40, &(self.size as u64).to_le_bytes());
        put(&mut b, 48, &(self.blocks as u64).to_le_bytes());
        // atime 64, btime 80 (not reported), ctime 96, mtime 112.
        for (off, t) in [(64, self.atime), (96, self.ctime), (112, self.mtime)] {
            put(&mut b, off, &t.sec.to_le_bytes());
            put(&mut b, off + 8, &(t.nsec as u32).to_le_bytes());
        }
        let (rma, rmi) = dev_split(self.rdev);
        let (dma, dmi) = dev_split(self.dev);
        put(&mut b, 128, &rma.to_le_bytes());
        put(&mut b, 132, &rmi.to_le_bytes());
        put(&mut b, 136, &dma.to_le_bytes());
        put(&mut b, 140, &dmi.to_le_bytes());
        b
    }

    /// From a host `stat` (lower-layer files keep their host identity).
    /// The casts are identities or sign changes of the kernel's own field
    /// types on x86-64.
    #[allow(clippy::unnecessary_cast)]
    pub fn from_host(st: &rustix::fs::Stat) -> Stat {
        Stat {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            nlink: st.st_nlink as u64,
            mode: st.st_mode as u32,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            rdev: st.st_rdev as u64,
            size: st.st_size as i64,
            blksize: st.st_blksize as i64,
            blocks: st.st_blocks as i64,
            atime: Timespec {
                sec: st.st_atime as i64,
                nsec: st.st_atime_nsec as i64,
            },
            mtime: Timespec {
                sec: st.st_mtime as i64,
                nsec: st.st_mtime_nsec as i64,
            },
            ctime: Timespec {
                sec: st.st_ctime as i64,
                nsec: st.st_ctime_nsec as i64,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_layout_matches_libc_struct_offsets() {
        let st = Stat {
            dev: 0x0102,
            ino: 77,
            nlink: 3,
            mode: libc::S_IFREG | 0o644,
            uid: 1000,
            gid: 100,
            size: 4097,
            blksize: 4096,
            blocks: 16,
            mtime: Timespec { sec: 5, nsec: 6 },
            ..Stat::default()
        };
        let b = st.to_bytes();
        // Offsets from glibc's x86-64 struct stat.
        assert_eq!(std::mem::size_of::<libc::stat>(), STAT_SIZE);
        assert_eq!(u64::from_le_bytes(b[8..16].try_into().unwrap()), 77);
        assert_eq!(
            u32::from_le_bytes(b[24..28].try_into().unwrap()),
            libc::S_IFREG | 0o644
        );
        assert_eq!(i64::from_le_bytes(b[48..56].try_into().unwrap()), 4097);
        assert_eq!(i64::from_le_bytes(b[88..96].try_into().unwrap()), 5);
        assert_eq!(i64::from_le_bytes(b[96..104].try_into().unwrap()), 6);
    }

    #[test]
    fn statx_layout_places_mode_ino_and_dev_numbers() {
        let st = Stat {
            dev: dev_make(8, 1),
            ino: 99,
            mode: libc::S_IFDIR | 0o755,
            ..Stat::default()
        };
        let b = st.to_statx_bytes();
        assert_eq!(
            u16::from_le_bytes(b[28..30].try_into().unwrap()),
            (libc::S_IFDIR | 0o755) as u16
        );
        assert_eq!(u64::from_le_bytes(b[32..40].try_into().unwrap()), 99);
        assert_eq!(u32::from_le_bytes(b[136..140].try_into().unwrap()), 8);
        assert_eq!(u32::from_le_bytes(b[140..144].try_into().unwrap()), 1);
    }

    #[test]
    fn dev_encoding_round_trips_large_numbers() {
        assert_eq!(dev_split(dev_make(259, 70000)), (259, 70000));
        assert_eq!(dev_make(1, 3), 0x103);
    }
}
