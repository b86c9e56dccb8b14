//! LZ4 for the SpiceVMC channels' `COMPRESSED_DATA` (usbredir, port, webdav).
//!
//! Unlike the LZ4 *image* type ([`crate::lz4`]), a `COMPRESSED_DATA` message carries one
//! plain LZ4 block (no length prefix, no stream history): the message itself gives the
//! compression type and the uncompressed size. spice-server compresses a chunk read from
//! the device only when it is larger than [`COMPRESS_THRESHOLD`] bytes and only sends the
//! compressed form when it is strictly smaller; this module's [`compress`] follows the same
//! rule, and [`decompress`] insists the block expands to exactly the announced size.

use thiserror::Error;

/// Chunks of at most this many bytes are never compressed (spice-server's threshold).
pub const COMPRESS_THRESHOLD: usize = 1000;

/// Why a `COMPRESSED_DATA` block was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VmcLz4Error {
    /// The announced uncompressed size is above the caller's cap.
    #[error("uncompressed size {size} exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced size.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// The block is not valid LZ4 for that size.
    #[error("invalid LZ4 block: {0}")]
    Corrupt(String),
    /// The block expanded to a different size than announced.
    #[error("LZ4 block expanded to {got} bytes, {expected} announced")]
    SizeMismatch {
        /// What the message announced.
        expected: usize,
        /// What the block held.
        got: usize,
    },
}

/// Compresses `data` as one LZ4 block when that pays off: `None` when `data` is at most
/// [`COMPRESS_THRESHOLD`] bytes or the block would not be smaller than `data`.
pub fn compress(data: &[u8]) -> Option<Vec<u8>> {
    if data.len() <= COMPRESS_THRESHOLD {
        return None;
    }
    let block = lz4_flex::block::compress(data);
    (block.len() < data.len()).then_some(block)
}

/// Decompresses one LZ4 block that must expand to exactly `uncompressed_size` bytes,
/// refusing sizes above `max` before allocating anything.
pub fn decompress(
    block: &[u8],
    uncompressed_size: usize,
    max: usize,
) -> Result<Vec<u8>, VmcLz4Error> {
    if uncompressed_size > max {
        return Err(VmcLz4Error::TooLarge {
            size: uncompressed_size,
            max,
        });
    }
    let mut out = vec![0u8; uncompressed_size];
    let got = lz4_flex::block::decompress_into(block, &mut out)
        .map_err(|e| VmcLz4Error::Corrupt(e.to_string()))?;
    if got != uncompressed_size {
        return Err(VmcLz4Error::SizeMismatch {
            expected: uncompressed_size,
            got,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_threshold() {
        let small = vec![7u8; COMPRESS_THRESHOLD];
        assert_eq!(compress(&small), None);
        let big: Vec<u8> = (0..20_000u32).map(|i| (i % 13) as u8).collect();
        let c = compress(&big).expect("compressible");
        assert!(c.len() < big.len());
        assert_eq!(decompress(&c, big.len(), 1 << 20).unwrap(), big);
        // Incompressible data is sent plain.
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert_eq!(compress(&noise), None);
    }

    #[test]
    fn malformed_blocks_are_errors() {
        let big = vec![1u8; 4096];
        let c = compress(&big).unwrap();
        assert!(matches!(
            decompress(&c, 4095, 1 << 20),
            Err(VmcLz4Error::Corrupt(_) | VmcLz4Error::SizeMismatch { .. })
        ));
        assert!(matches!(
            decompress(&c, 4097, 1 << 20),
            Err(VmcLz4Error::Corrupt(_) | VmcLz4Error::SizeMismatch { .. })
        ));
        assert_eq!(
            decompress(&c, 2 << 20, 1 << 20),
            Err(VmcLz4Error::TooLarge {
                size: 2 << 20,
                max: 1 << 20
            })
        );
        assert!(decompress(&[0xff, 0xff, 0xff], 100, 1 << 20).is_err());
        assert!(decompress(&c[..c.len() / 2], 4096, 1 << 20).is_err());
    }
}
