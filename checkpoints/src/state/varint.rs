//! Unsigned LEB128 varints, the encoding postcard uses for integers; used
//! directly for the graph layer's lengths and object ids (hot paths).

/// Appends `v` as a varint.
pub(crate) fn write(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Why a varint could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum VarintError {
    Truncated,
    Overflow,
}

/// Reads a varint from `input` at `*pos`, advancing it.
pub(crate) fn read(input: &[u8], pos: &mut usize) -> Result<u64, VarintError> {
    let mut v: u64 = 0;
    let mut shift = 0u32;
    loop {
        let Some(&b) = input.get(*pos) else {
            return Err(VarintError::Truncated);
        };
        *pos += 1;
        let low = u64::from(b & 0x7f);
        if shift == 63 && low > 1 {
            return Err(VarintError::Overflow);
        }
        v |= low << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
        shift += 7;
        if shift > 63 {
            return Err(VarintError::Overflow);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_postcard() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            write(&mut buf, v);
            assert_eq!(buf, postcard::to_stdvec(&v).expect("u64 serializes"));
            let mut pos = 0;
            assert_eq!(read(&buf, &mut pos), Ok(v));
            assert_eq!(pos, buf.len());
        }
    }

    #[test]
    fn rejects_overflow_and_truncation() {
        let mut pos = 0;
        assert_eq!(read(&[0xff; 10], &mut pos), Err(VarintError::Overflow));
        let mut pos = 0;
        assert_eq!(read(&[0x80, 0x80], &mut pos), Err(VarintError::Truncated));
    }
}
