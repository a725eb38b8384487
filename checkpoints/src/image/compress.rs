//! Compression of the state section and of memory chunks.

use std::io::Read;

use serde::{Deserialize, Serialize};

use super::error::{ImageError, WriteError};
use super::manifest::{Codec, StateInfo};

/// Compression requested for an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Compression {
    /// Store as is; memory chunks are page-aligned in `memory.bin` so a
    /// lazy restore can map them.
    None,
    /// zstd at this level (zstd's range, negative levels included; 1 is
    /// fast and usually the right choice for memory).
    Zstd(i32),
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Zstd(1)
    }
}

impl Compression {
    /// Checks the level against zstd's range.
    pub fn validate(&self) -> Result<(), WriteError> {
        match self {
            Compression::None => Ok(()),
            Compression::Zstd(level) if zstd::compression_level_range().contains(level) => Ok(()),
            Compression::Zstd(_) => Err(WriteError::InvalidOption {
                what: "zstd level outside zstd::compression_level_range()",
            }),
        }
    }
}

/// Compresses the state bytes; stores them raw if compression does not
/// shrink them. Returns the section info and the stored bytes (`None`:
/// store `state` itself).
pub(crate) fn compress_state(
    state: &[u8],
    compression: Compression,
) -> Result<(StateInfo, Option<Vec<u8>>), WriteError> {
    let raw_len = state.len() as u64;
    if let Compression::Zstd(level) = compression {
        let packed =
            zstd::bulk::compress(state, level).map_err(|source| WriteError::Compress { source })?;
        if packed.len() < state.len() {
            let info = StateInfo {
                codec: Codec::Zstd,
                raw_len,
                stored_len: packed.len() as u64,
                crc32c: crc32c::crc32c(&packed),
            };
            return Ok((info, Some(packed)));
        }
    }
    let info = StateInfo {
        codec: Codec::Raw,
        raw_len,
        stored_len: raw_len,
        crc32c: crc32c::crc32c(state),
    };
    Ok((info, None))
}

/// Checks the stored state bytes against `info` and returns the raw state.
/// Precondition: `info` passed validation (raw_len within bounds).
pub(crate) fn decode_state(info: &StateInfo, stored: Vec<u8>) -> Result<Vec<u8>, ImageError> {
    let computed = crc32c::crc32c(&stored);
    if computed != info.crc32c {
        return Err(ImageError::StateChecksumMismatch {
            stored: info.crc32c,
            computed,
        });
    }
    match info.codec {
        Codec::Raw => Ok(stored),
        Codec::Zstd => {
            // Grow with the data actually produced, never by trusting
            // raw_len for the whole allocation up front.
            let mut out = Vec::with_capacity(info.raw_len.min(4 << 20) as usize);
            let decoder =
                zstd::stream::read::Decoder::with_buffer(stored.as_slice()).map_err(|source| {
                    ImageError::StateDecompress {
                        expected: info.raw_len,
                        source: Some(source),
                    }
                })?;
            decoder
                .take(info.raw_len.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|source| ImageError::StateDecompress {
                    expected: info.raw_len,
                    source: Some(source),
                })?;
            if out.len() as u64 != info.raw_len {
                return Err(ImageError::StateDecompress {
                    expected: info.raw_len,
                    source: None,
                });
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_state_is_stored_zstd() {
        let state = vec![7u8; 100_000];
        let (info, packed) = compress_state(&state, Compression::Zstd(3)).unwrap();
        assert_eq!(info.codec, Codec::Zstd);
        assert!(info.stored_len < 1000);
        assert_eq!(decode_state(&info, packed.unwrap()).unwrap(), state);
    }

    #[test]
    fn incompressible_state_is_stored_raw() {
        // xorshift64 output: no redundancy for zstd to find.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let state: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let (info, packed) = compress_state(&state, Compression::Zstd(1)).unwrap();
        assert_eq!((info.codec, packed), (Codec::Raw, None));
    }

    #[test]
    fn zstd_that_expands_past_raw_len_is_refused() {
        let state = vec![0u8; 10_000];
        let (mut info, packed) = compress_state(&state, Compression::Zstd(1)).unwrap();
        info.raw_len = 9_999;
        assert!(matches!(
            decode_state(&info, packed.unwrap()),
            Err(ImageError::StateDecompress { source: None, .. })
        ));
    }

    #[test]
    fn out_of_range_level_is_refused() {
        assert!(Compression::Zstd(1000).validate().is_err());
    }
}
