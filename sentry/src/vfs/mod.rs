//! Files: file descriptions, the fd table, the overlay root filesystem,
//! path resolution, devices, procfs and pipes.

mod mapped;

pub use mapped::MappedFile;
