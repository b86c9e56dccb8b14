//! Framing apart from parsing: given the bytes received so far, say how many more are
//! needed, or where one complete message lies. Parsers only ever see whole messages.
//!
//! Sizes read from headers are checked against a caller-set maximum before anything is
//! allocated or awaited, so a hostile peer cannot make a receiver buffer gigabytes.

use core::ops::Range;

use crate::header::{DataHeader, HeaderKind, MiniHeader};
use crate::link::{LinkError, LinkHeader};
use crate::wire::{Decode, ReadCursor};

/// A framing failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The header announces more body bytes than the caller allows.
    #[error("message type {msg_type} announces {size} bytes, limit is {max}")]
    TooLarge {
        /// Message type from the header.
        msg_type: u16,
        /// Announced body size.
        size: u32,
        /// The caller's limit.
        max: u32,
    },
}

/// One complete data message located in the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    /// Message type.
    pub msg_type: u16,
    /// Serial: from the full header, or counted from 1 for the mini header.
    pub serial: u64,
    /// The full header's `sub_list` (0 for the mini header).
    pub sub_list: u32,
    /// Where the body lies in the buffer.
    pub body: Range<usize>,
    /// Header plus body: how many bytes to consume.
    pub total_len: usize,
}

/// What the framer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// This many more bytes are needed (at least).
    Need(usize),
    /// A whole message is at the start of the buffer.
    Complete(FrameInfo),
}

/// Frames data messages of one direction of one channel.
#[derive(Debug, Clone)]
pub struct Framer {
    kind: HeaderKind,
    max_size: u32,
    next_serial: u64,
}

impl Framer {
    /// A framer for `kind` headers accepting bodies of at most `max_size` bytes.
    pub fn new(kind: HeaderKind, max_size: u32) -> Self {
        Self {
            kind,
            max_size,
            next_serial: 1,
        }
    }

    /// The header kind.
    pub fn kind(&self) -> HeaderKind {
        self.kind
    }

    /// The body size limit.
    pub fn max_size(&self) -> u32 {
        self.max_size
    }

    /// Changes the body size limit.
    pub fn set_max_size(&mut self, max_size: u32) {
        self.max_size = max_size;
    }

    /// Looks at the start of `buf` without changing any state. For the mini header the
    /// reported serial is the one the next message will get.
    pub fn peek(&self, buf: &[u8]) -> Result<Frame, FrameError> {
        let hlen = self.kind.size();
        if buf.len() < hlen {
            return Ok(Frame::Need(hlen - buf.len()));
        }
        let mut r = ReadCursor::new(buf);
        // Both reads cannot fail: `hlen` bytes are present.
        let (msg_type, size, serial, sub_list) = match self.kind {
            HeaderKind::Full => match DataHeader::decode(&mut r) {
                Ok(h) => (h.msg_type, h.size, h.serial, h.sub_list),
                Err(_) => return Ok(Frame::Need(hlen)),
            },
            HeaderKind::Mini => match MiniHeader::decode(&mut r) {
                Ok(h) => (h.msg_type, h.size, self.next_serial, 0),
                Err(_) => return Ok(Frame::Need(hlen)),
            },
        };
        if size > self.max_size {
            return Err(FrameError::TooLarge {
                msg_type,
                size,
                max: self.max_size,
            });
        }
        let total_len = hlen + size as usize;
        if buf.len() < total_len {
            return Ok(Frame::Need(total_len - buf.len()));
        }
        Ok(Frame::Complete(FrameInfo {
            msg_type,
            serial,
            sub_list,
            body: hlen..total_len,
            total_len,
        }))
    }

    /// Like [`Framer::peek`], and counts the message when it is complete: the caller must
    /// then consume `total_len` bytes before calling again.
    pub fn next_frame(&mut self, buf: &[u8]) -> Result<Frame, FrameError> {
        let f = self.peek(buf)?;
        if let Frame::Complete(info) = &f {
            self.next_serial = match self.kind {
                HeaderKind::Mini => self.next_serial.wrapping_add(1),
                HeaderKind::Full => info.serial.wrapping_add(1),
            };
        }
        Ok(f)
    }
}

/// A link-stage unit (header plus message or reply) located in the input buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkFrame {
    /// This many more bytes are needed.
    Need(usize),
    /// The header, and where its `size` bytes lie.
    Complete {
        /// The link header.
        header: LinkHeader,
        /// The message or reply body.
        body: Range<usize>,
    },
}

/// Frames a link-stage unit: 16-byte [`LinkHeader`], then `size` bytes. Checks the magic,
/// the major version and `min_size <= size <= max_size` before waiting for the body.
pub fn link_frame(buf: &[u8], min_size: u32, max_size: u32) -> Result<LinkFrame, LinkError> {
    if buf.len() < LinkHeader::SIZE {
        // Check the magic as soon as it can be seen.
        let n = buf.len().min(4);
        if buf[..n] != crate::link::MAGIC[..n] {
            let mut magic = [0u8; 4];
            magic[..n].copy_from_slice(&buf[..n]);
            return Err(LinkError::InvalidMagic { magic });
        }
        return Ok(LinkFrame::Need(LinkHeader::SIZE - buf.len()));
    }
    let header = LinkHeader::parse(buf)?;
    header.validate(min_size, max_size)?;
    let total = LinkHeader::SIZE + header.size as usize;
    if buf.len() < total {
        return Ok(LinkFrame::Need(total - buf.len()));
    }
    Ok(LinkFrame::Complete {
        header,
        body: LinkHeader::SIZE..total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mini_frames_count_serials() {
        let mut f = Framer::new(HeaderKind::Mini, 16);
        let msg = [0x67, 0, 2, 0, 0, 0, 0xaa, 0xbb];
        assert_eq!(f.next_frame(&msg[..3]).unwrap(), Frame::Need(3));
        assert_eq!(f.next_frame(&msg[..7]).unwrap(), Frame::Need(1));
        for serial in 1..=2 {
            let Frame::Complete(info) = f.next_frame(&msg).unwrap() else {
                panic!("complete expected")
            };
            assert_eq!(
                (
                    info.msg_type,
                    info.serial,
                    info.body.clone(),
                    info.total_len
                ),
                (0x67, serial, 6..8, 8)
            );
        }
        let big = [1, 0, 17, 0, 0, 0];
        assert_eq!(
            f.next_frame(&big),
            Err(FrameError::TooLarge {
                msg_type: 1,
                size: 17,
                max: 16
            })
        );
    }

    #[test]
    fn full_frames_use_explicit_serial() {
        let f = Framer::new(HeaderKind::Full, 100);
        let mut m = vec![9, 0, 0, 0, 0, 0, 0, 0, 3, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(f.peek(&m).unwrap(), Frame::Need(1));
        m.push(5);
        let Frame::Complete(info) = f.peek(&m).unwrap() else {
            panic!()
        };
        assert_eq!((info.serial, info.msg_type, info.body), (9, 3, 18..19));
    }

    #[test]
    fn link_frames() {
        assert!(matches!(
            link_frame(b"GE", 18, 4096),
            Err(LinkError::InvalidMagic { .. })
        ));
        assert_eq!(link_frame(b"RED", 18, 4096).unwrap(), LinkFrame::Need(13));
        let mut h = b"REDQ\x02\0\0\0\x02\0\0\0\x12\0\0\0".to_vec();
        assert_eq!(link_frame(&h, 18, 4096).unwrap(), LinkFrame::Need(18));
        h.resize(34, 0);
        assert!(
            matches!(link_frame(&h, 18, 4096).unwrap(), LinkFrame::Complete { body, .. } if body == (16..34))
        );
        h[12] = 0xff;
        h[13] = 0xff;
        assert!(matches!(
            link_frame(&h, 18, 4096),
            Err(LinkError::InvalidSize { .. })
        ));
        h[4] = 1;
        assert!(matches!(
            link_frame(&h, 18, 4096),
            Err(LinkError::VersionMismatch { major: 1, .. })
        ));
    }
}
