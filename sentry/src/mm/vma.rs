//! Virtual memory areas: the ranges of an address space and what backs
//! them (compare Linux `struct vm_area_struct`).

use std::sync::Arc;

use checkpoints::Stateify;

use crate::platform::Prot;
use crate::vfs::overlay::Node;
use crate::vfs::MappedFile;

/// `Prot` (a platform type) saved as its `PROT_*` bits.
pub(super) mod prot_state {
    use crate::platform::Prot;
    use checkpoints::state::{Decoder, Encoder, LoadError, SaveError};

    /// Schema contribution: "prot as u8 PROT_* bits", version 1.
    pub const FINGERPRINT: u64 = 0x5052_4f54_5538_0001;

    pub fn save(p: &Prot, enc: &mut Encoder) -> Result<(), SaveError> {
        enc.serialize(&(p.bits() as u8))
    }

    pub fn load(dec: &mut Decoder<'_>) -> Result<Prot, LoadError> {
        let bits: u8 = dec.deserialize()?;
        Ok(Prot::from_bits(bits as u64))
    }
}

/// What a VMA maps.
#[derive(Clone, Debug, Stateify)]
pub enum VmaBacking {
    /// Anonymous memory: zero-filled on first touch.
    Anonymous,
    /// A file; `offset` is the file offset of the VMA's first byte.
    File { file: MappedFile, offset: u64 },
}

/// The name `/proc/<pid>/maps` shows for an anonymous VMA.
#[derive(Clone, Debug, PartialEq, Eq, Stateify)]
pub enum VmaName {
    None,
    Heap,
    Stack,
}

/// One mapping `[start, end)` (page-aligned, non-empty).
#[derive(Clone, Debug, Stateify)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    /// Current protection (`PROT_*`).
    #[state(with = "prot_state")]
    pub prot: Prot,
    /// The most `mprotect` may grant (Linux `VM_MAY*`): a shared file
    /// mapping gets write only if its fd was open for writing (see
    /// `MemoryManager::mmap`).
    #[state(with = "prot_state")]
    pub max_prot: Prot,
    /// `MAP_SHARED`: pages are shared with other address spaces after
    /// fork (never copy-on-write); for an overlay file, they are the
    /// file's shared pages (see [`Vma::shared_node`]).
    pub shared: bool,
    /// `MAP_GROWSDOWN` (recorded and shown; stacks are mapped at full size
    /// so no growth happens).
    pub growsdown: bool,
    pub backing: VmaBacking,
    pub name: VmaName,
    /// `MADV_DONTFORK`: the child of a fork does not get this range.
    pub dontfork: bool,
    /// `MADV_WIPEONFORK`: the child gets this range empty (zero-filled).
    pub wipeonfork: bool,
}

impl Vma {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self.backing, VmaBacking::Anonymous)
    }

    /// The overlay file whose shared pages back this VMA: a `MAP_SHARED`
    /// mapping of an overlay file (compare Linux `vma->vm_file->f_mapping`
    /// for `VM_SHARED`).
    pub fn shared_node(&self) -> Option<&Arc<Node>> {
        match &self.backing {
            VmaBacking::File { file, .. } if self.shared => file.overlay_node(),
            _ => None,
        }
    }

    /// The file offset backing guest address `addr` (file VMAs).
    pub fn file_offset(&self, addr: u64) -> Option<u64> {
        match &self.backing {
            VmaBacking::File { offset, .. } => Some(offset + (addr - self.start)),
            VmaBacking::Anonymous => None,
        }
    }

    /// Splits at `addr` (strictly inside): `self` keeps `[start, addr)`,
    /// the returned VMA is `[addr, end)`.
    pub(super) fn split_off(&mut self, addr: u64) -> Vma {
        debug_assert!(self.start < addr && addr < self.end);
        let mut tail = self.clone();
        tail.start = addr;
        if let VmaBacking::File { offset, .. } = &mut tail.backing {
            *offset += addr - self.start;
        }
        self.end = addr;
        tail
    }

    /// Whether `next` (starting at `self.end`) can be merged into `self`
    /// (compare Linux `is_mergeable_vma` + `can_vma_merge_after`).
    pub(super) fn can_merge(&self, next: &Vma) -> bool {
        if self.end != next.start
            || self.prot != next.prot
            || self.max_prot != next.max_prot
            || self.shared != next.shared
            || self.growsdown != next.growsdown
            || self.name != next.name
            || self.dontfork != next.dontfork
            || self.wipeonfork != next.wipeonfork
        {
            return false;
        }
        match (&self.backing, &next.backing) {
            (VmaBacking::Anonymous, VmaBacking::Anonymous) => true,
            (
                VmaBacking::File {
                    file: a,
                    offset: oa,
                },
                VmaBacking::File {
                    file: b,
                    offset: ob,
                },
            ) => a.same_file(b) && oa + self.len() == *ob,
            _ => false,
        }
    }
}
