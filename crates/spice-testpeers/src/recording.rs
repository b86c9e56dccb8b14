//! What a [`crate::proxy::RecordingProxy`] saw, and its file format.
//!
//! # File format (`SPICEREC` version 1)
//!
//! All integers little-endian.
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `SPICEREC` |
//! | 4 | u32 version = 1 |
//! | 4 | u32 number of connections `N` (indices `0..N`, in accept order) |
//!
//! then, until the end of the file, one record per `read()` the proxy did, in the order the
//! proxy did them (across all connections):
//!
//! | bytes | content |
//! |---|---|
//! | 4 | u32 connection index (`< N`) |
//! | 1 | direction: 0 = client → server, 1 = server → client |
//! | 4 | u32 length `L` |
//! | L | the bytes |
//!
//! A connection's stream in one direction is the concatenation of its records in that
//! direction. Nothing is parsed: the bytes are exactly what crossed the proxy.

use std::path::Path;

/// The file magic.
pub const MAGIC: &[u8; 8] = b"SPICEREC";
/// The file format version written and understood.
pub const VERSION: u32 = 1;
/// The largest connection count a file may declare.
pub const MAX_CONNECTIONS: u32 = 1 << 16;

/// Which way bytes went through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client (which connected to the proxy) to the server (the proxy's target).
    ClientToServer,
    /// From the server back to the client.
    ServerToClient,
}

impl Direction {
    /// The byte used in the file format.
    pub fn to_byte(self) -> u8 {
        match self {
            Direction::ClientToServer => 0,
            Direction::ServerToClient => 1,
        }
    }

    /// Parses the file-format byte.
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Direction::ClientToServer),
            1 => Some(Direction::ServerToClient),
            _ => None,
        }
    }
}

/// Both directions of one proxied TCP connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    /// Accept order, from 0.
    pub index: u32,
    /// Every byte the client sent.
    pub client_to_server: Vec<u8>,
    /// Every byte the server sent.
    pub server_to_client: Vec<u8>,
}

impl Connection {
    /// The bytes sent in `direction`.
    pub fn bytes(&self, direction: Direction) -> &[u8] {
        match direction {
            Direction::ClientToServer => &self.client_to_server,
            Direction::ServerToClient => &self.server_to_client,
        }
    }

    pub(crate) fn bytes_mut(&mut self, direction: Direction) -> &mut Vec<u8> {
        match direction {
            Direction::ClientToServer => &mut self.client_to_server,
            Direction::ServerToClient => &mut self.server_to_client,
        }
    }
}

/// One `read()` of the proxy: which connection, which way, how many bytes (the bytes are the
/// next `len` bytes of that connection's stream in that direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// The connection's index.
    pub connection: u32,
    /// The direction.
    pub direction: Direction,
    /// Number of bytes.
    pub len: u32,
}

/// Everything a proxy recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recording {
    /// The connections, indexed by accept order (`connections[i].index == i`).
    pub connections: Vec<Connection>,
    /// The order in which bytes arrived, across connections and directions.
    pub chunks: Vec<Chunk>,
}

/// Why a recording file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file does not start with `SPICEREC`.
    #[error("not a SPICEREC recording")]
    BadMagic,
    /// The version is not [`VERSION`].
    #[error("unsupported recording version {0}")]
    UnsupportedVersion(u32),
    /// The header declares more than [`MAX_CONNECTIONS`] connections.
    #[error("recording declares {0} connections (at most {MAX_CONNECTIONS})")]
    TooManyConnections(u32),
    /// A record or the header is cut short.
    #[error("recording truncated at byte {offset}")]
    Truncated {
        /// Where the missing bytes should start.
        offset: usize,
    },
    /// A record names a connection the header does not declare.
    #[error("record at byte {offset} names connection {connection} of {count}")]
    BadConnection {
        /// Record offset.
        offset: usize,
        /// The index found.
        connection: u32,
        /// The declared count.
        count: u32,
    },
    /// A record's direction byte is neither 0 nor 1.
    #[error("record at byte {offset} has direction byte {value}")]
    BadDirection {
        /// Record offset.
        offset: usize,
        /// The byte found.
        value: u8,
    },
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], RecordingError> {
    let end = pos
        .checked_add(n)
        .filter(|&e| e <= buf.len())
        .ok_or(RecordingError::Truncated { offset: *pos })?;
    let s = &buf[*pos..end];
    *pos = end;
    Ok(s)
}

fn take_u32(buf: &[u8], pos: &mut usize) -> Result<u32, RecordingError> {
    let s = take(buf, pos, 4)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

impl Recording {
    /// The connection with accept index `index`.
    pub fn connection(&self, index: usize) -> Option<&Connection> {
        self.connections.get(index)
    }

    /// Total bytes recorded, both directions, all connections.
    pub fn total_bytes(&self) -> usize {
        self.connections
            .iter()
            .map(|c| c.client_to_server.len() + c.server_to_client.len())
            .sum()
    }

    /// Encodes the recording in the `SPICEREC` format (see the module docs).
    ///
    /// Bytes not covered by [`Recording::chunks`] (e.g. a hand-built recording with no chunks)
    /// are written as one trailing record per connection and direction.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.total_bytes() + 9 * self.chunks.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        let n = u32::try_from(self.connections.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&n.to_le_bytes());
        let mut offsets = vec![[0usize; 2]; self.connections.len()];
        let put = |out: &mut Vec<u8>, conn: u32, dir: Direction, bytes: &[u8]| {
            for piece in bytes.chunks(u32::MAX as usize) {
                out.extend_from_slice(&conn.to_le_bytes());
                out.push(dir.to_byte());
                // chunks() bounds piece.len() by u32::MAX.
                out.extend_from_slice(&(piece.len() as u32).to_le_bytes());
                out.extend_from_slice(piece);
            }
        };
        for ch in &self.chunks {
            let Some(c) = self.connections.get(ch.connection as usize) else {
                continue;
            };
            let d = usize::from(ch.direction.to_byte());
            let data = c.bytes(ch.direction);
            let start = offsets[ch.connection as usize][d].min(data.len());
            let end = start.saturating_add(ch.len as usize).min(data.len());
            put(&mut out, ch.connection, ch.direction, &data[start..end]);
            offsets[ch.connection as usize][d] = end;
        }
        for (i, c) in self.connections.iter().enumerate() {
            for dir in [Direction::ClientToServer, Direction::ServerToClient] {
                let data = c.bytes(dir);
                let start = offsets[i][usize::from(dir.to_byte())];
                if start < data.len() {
                    put(&mut out, i as u32, dir, &data[start..]);
                }
            }
        }
        out
    }

    /// Decodes a `SPICEREC` file's bytes.
    pub fn from_bytes(buf: &[u8]) -> Result<Self, RecordingError> {
        let mut pos = 0;
        if take(buf, &mut pos, 8).map_err(|_| RecordingError::BadMagic)? != MAGIC {
            return Err(RecordingError::BadMagic);
        }
        let version = take_u32(buf, &mut pos)?;
        if version != VERSION {
            return Err(RecordingError::UnsupportedVersion(version));
        }
        let count = take_u32(buf, &mut pos)?;
        if count > MAX_CONNECTIONS {
            return Err(RecordingError::TooManyConnections(count));
        }
        let mut rec = Recording {
            connections: (0..count)
                .map(|index| Connection {
                    index,
                    ..Connection::default()
                })
                .collect(),
            chunks: Vec::new(),
        };
        while pos < buf.len() {
            let offset = pos;
            let connection = take_u32(buf, &mut pos)?;
            let value = take(buf, &mut pos, 1)?[0];
            let direction = Direction::from_byte(value)
                .ok_or(RecordingError::BadDirection { offset, value })?;
            let len = take_u32(buf, &mut pos)?;
            let data = take(buf, &mut pos, len as usize)?;
            let conn = rec.connections.get_mut(connection as usize).ok_or(
                RecordingError::BadConnection {
                    offset,
                    connection,
                    count,
                },
            )?;
            conn.bytes_mut(direction).extend_from_slice(data);
            rec.chunks.push(Chunk {
                connection,
                direction,
                len,
            });
        }
        Ok(rec)
    }

    /// Writes the recording to `path` in the `SPICEREC` format.
    pub fn save(&self, path: &Path) -> Result<(), RecordingError> {
        std::fs::write(path, self.to_bytes()).map_err(|source| RecordingError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// Reads a `SPICEREC` file.
    pub fn load(path: &Path) -> Result<Self, RecordingError> {
        let buf = std::fs::read(path).map_err(|source| RecordingError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Recording {
        Recording {
            connections: vec![
                Connection {
                    index: 0,
                    client_to_server: b"REDQhello".to_vec(),
                    server_to_client: b"REDQworld!".to_vec(),
                },
                Connection {
                    index: 1,
                    client_to_server: Vec::new(),
                    server_to_client: b"x".to_vec(),
                },
            ],
            chunks: vec![
                Chunk {
                    connection: 0,
                    direction: Direction::ClientToServer,
                    len: 4,
                },
                Chunk {
                    connection: 0,
                    direction: Direction::ServerToClient,
                    len: 10,
                },
                Chunk {
                    connection: 0,
                    direction: Direction::ClientToServer,
                    len: 5,
                },
                Chunk {
                    connection: 1,
                    direction: Direction::ServerToClient,
                    len: 1,
                },
            ],
        }
    }

    #[test]
    fn golden_bytes_and_round_trip() {
        let r = sample();
        let b = r.to_bytes();
        let mut want = b"SPICEREC\x01\x00\x00\x00\x02\x00\x00\x00".to_vec();
        want.extend_from_slice(b"\x00\x00\x00\x00\x00\x04\x00\x00\x00REDQ");
        want.extend_from_slice(b"\x00\x00\x00\x00\x01\x0a\x00\x00\x00REDQworld!");
        want.extend_from_slice(b"\x00\x00\x00\x00\x00\x05\x00\x00\x00hello");
        want.extend_from_slice(b"\x01\x00\x00\x00\x01\x01\x00\x00\x00x");
        assert_eq!(b, want);
        assert_eq!(Recording::from_bytes(&b).unwrap(), r);
    }

    #[test]
    fn bytes_without_chunks_are_still_saved() {
        let mut r = sample();
        r.chunks.clear();
        let back = Recording::from_bytes(&r.to_bytes()).unwrap();
        assert_eq!(back.connections, r.connections);
        assert_eq!(back.chunks.len(), 3);
    }

    #[test]
    fn save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.spicerec");
        sample().save(&p).unwrap();
        assert_eq!(Recording::load(&p).unwrap(), sample());
        assert!(matches!(
            Recording::load(&dir.path().join("missing")),
            Err(RecordingError::Io { .. })
        ));
    }

    #[test]
    fn malformed_files_are_errors() {
        let good = sample().to_bytes();
        assert!(matches!(
            Recording::from_bytes(b"SPICE"),
            Err(RecordingError::BadMagic)
        ));
        assert!(matches!(
            Recording::from_bytes(b"NOTSPICE\x01\0\0\0\0\0\0\0"),
            Err(RecordingError::BadMagic)
        ));
        let mut v = good.clone();
        v[8] = 2;
        assert!(matches!(
            Recording::from_bytes(&v),
            Err(RecordingError::UnsupportedVersion(2))
        ));
        let mut v = good.clone();
        v[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Recording::from_bytes(&v),
            Err(RecordingError::TooManyConnections(_))
        ));
        let mut v = good.clone();
        v[12] = 0;
        assert!(matches!(
            Recording::from_bytes(&v),
            Err(RecordingError::BadConnection { offset: 16, .. })
        ));
        let mut v = good.clone();
        v[20] = 7;
        assert!(matches!(
            Recording::from_bytes(&v),
            Err(RecordingError::BadDirection { value: 7, .. })
        ));
        // A huge length must not allocate or read out of bounds.
        let mut v = good.clone();
        v[21..25].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Recording::from_bytes(&v),
            Err(RecordingError::Truncated { .. })
        ));
        for cut in 9..good.len() {
            if Recording::from_bytes(&good[..cut]).is_ok() {
                // Only record boundaries may decode.
                assert!([16, 29, 48, 62].contains(&cut), "cut {cut}");
            }
        }
    }
}
