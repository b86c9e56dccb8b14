//! Cursor channel (4) messages: [`ServerMessage`] (8 messages, server to client only).
//!
//! INIT and SET end with a [`Cursor`] whose shape data is the rest of the message.

use crate::channel::ChannelType;
use crate::error::{DecodeError, EncodeError};
use crate::message::ChannelMessage;
use crate::types::{Cursor, Point16};
use crate::wire::{Decode, Encode, ReadCursor, WriteBuf};

/// Server message numbers of the cursor channel.
pub mod msg {
    /// INIT.
    pub const INIT: u16 = 101;
    /// RESET.
    pub const RESET: u16 = 102;
    /// SET.
    pub const SET: u16 = 103;
    /// MOVE.
    pub const MOVE: u16 = 104;
    /// HIDE.
    pub const HIDE: u16 = 105;
    /// TRAIL.
    pub const TRAIL: u16 = 106;
    /// INVAL_ONE.
    pub const INVAL_ONE: u16 = 107;
    /// INVAL_ALL.
    pub const INVAL_ALL: u16 = 108;
}

/// CURSOR_INIT (101): `Point16 position; u16 trail_length; u16 trail_frequency; u8 visible;
/// Cursor cursor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorInit<'a> {
    /// Position.
    pub position: Point16,
    /// Trail length.
    pub trail_length: u16,
    /// Trail frequency.
    pub trail_frequency: u16,
    /// Visible (0 or 1; other values kept).
    pub visible: u8,
    /// The cursor.
    pub cursor: Cursor<'a>,
}

/// CURSOR_SET (103): `Point16 position; u8 visible; Cursor cursor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorSet<'a> {
    /// Position.
    pub position: Point16,
    /// Visible (0 or 1; other values kept).
    pub visible: u8,
    /// The cursor.
    pub cursor: Cursor<'a>,
}

/// A cursor-channel message from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerMessage<'a> {
    /// INIT (101).
    Init(CursorInit<'a>),
    /// RESET (102).
    Reset,
    /// SET (103).
    Set(CursorSet<'a>),
    /// MOVE (104): new position.
    Move(Point16),
    /// HIDE (105).
    Hide,
    /// TRAIL (106).
    Trail {
        /// Trail length.
        length: u16,
        /// Trail frequency.
        frequency: u16,
    },
    /// INVAL_ONE (107): drop one cached cursor.
    InvalOne(u64),
    /// INVAL_ALL (108): drop every cached cursor.
    InvalAll,
}

fn server_name(msg_type: u16) -> Option<&'static str> {
    Some(match msg_type {
        msg::INIT => "init",
        msg::RESET => "reset",
        msg::SET => "set",
        msg::MOVE => "move",
        msg::HIDE => "hide",
        msg::TRAIL => "trail",
        msg::INVAL_ONE => "inval_one",
        msg::INVAL_ALL => "inval_all",
        _ => return None,
    })
}

impl<'a> ChannelMessage<'a> for ServerMessage<'a> {
    fn msg_type(&self) -> u16 {
        match self {
            ServerMessage::Init(_) => msg::INIT,
            ServerMessage::Reset => msg::RESET,
            ServerMessage::Set(_) => msg::SET,
            ServerMessage::Move(_) => msg::MOVE,
            ServerMessage::Hide => msg::HIDE,
            ServerMessage::Trail { .. } => msg::TRAIL,
            ServerMessage::InvalOne(_) => msg::INVAL_ONE,
            ServerMessage::InvalAll => msg::INVAL_ALL,
        }
    }

    fn name(&self) -> &'static str {
        server_name(self.msg_type()).unwrap_or("unknown")
    }

    fn decode_body(
        _channel: ChannelType,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<Self, DecodeError> {
        let name = server_name(msg_type).ok_or(DecodeError::UnknownMessage { msg_type })?;
        let mut r = ReadCursor::new(body);
        let m = match msg_type {
            msg::INIT => {
                r.ensure(9, name)?;
                ServerMessage::Init(CursorInit {
                    position: Point16::decode(&mut r)?,
                    trail_length: r.read_u16(name)?,
                    trail_frequency: r.read_u16(name)?,
                    visible: r.read_u8(name)?,
                    cursor: Cursor::decode(&mut r)?,
                })
            }
            msg::RESET => ServerMessage::Reset,
            msg::SET => {
                r.ensure(5, name)?;
                ServerMessage::Set(CursorSet {
                    position: Point16::decode(&mut r)?,
                    visible: r.read_u8(name)?,
                    cursor: Cursor::decode(&mut r)?,
                })
            }
            msg::MOVE => ServerMessage::Move(Point16::decode(&mut r)?),
            msg::HIDE => ServerMessage::Hide,
            msg::TRAIL => {
                r.ensure(4, name)?;
                ServerMessage::Trail {
                    length: r.read_u16(name)?,
                    frequency: r.read_u16(name)?,
                }
            }
            msg::INVAL_ONE => ServerMessage::InvalOne(r.read_u64(name)?),
            msg::INVAL_ALL => ServerMessage::InvalAll,
            _ => return Err(DecodeError::UnknownMessage { msg_type }),
        };
        r.finish(name)?;
        Ok(m)
    }

    fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        match self {
            ServerMessage::Init(i) => {
                i.position.encode(w)?;
                w.write_u16(i.trail_length);
                w.write_u16(i.trail_frequency);
                w.write_u8(i.visible);
                i.cursor.encode(w)?;
            }
            ServerMessage::Set(s) => {
                s.position.encode(w)?;
                w.write_u8(s.visible);
                s.cursor.encode(w)?;
            }
            ServerMessage::Move(p) => p.encode(w)?,
            ServerMessage::Trail { length, frequency } => {
                w.write_u16(*length);
                w.write_u16(*frequency);
            }
            ServerMessage::InvalOne(id) => w.write_u64(*id),
            ServerMessage::Reset | ServerMessage::Hide | ServerMessage::InvalAll => {}
        }
        Ok(())
    }

    fn name_of(_channel: ChannelType, msg_type: u16) -> Option<&'static str> {
        server_name(msg_type)
    }
}

/// Fuzz entry: the first 2 bytes (LE) are the message type, the rest the body. Decodes; if
/// that succeeds, encodes (which must give the same body: cursor messages have one layout)
/// and decodes again, panicking unless the values are equal. Never panics otherwise.
pub fn fuzz_server(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let msg_type = u16::from_le_bytes([data[0], data[1]]);
    let body = &data[2..];
    if let Ok(m) = ServerMessage::decode_body(ChannelType::CURSOR, msg_type, body) {
        let mut out = Vec::new();
        m.encode_body(&mut WriteBuf::new(&mut out))
            .expect("a decoded message re-encodes");
        assert_eq!(out.as_slice(), body, "cursor messages re-encode exactly");
        let again = ServerMessage::decode_body(ChannelType::CURSOR, msg_type, &out)
            .expect("an encoded message decodes");
        assert_eq!(m, again, "cursor round trip");
    }
}

/// proptest strategies for cursor messages (feature `proptest`).
#[cfg(feature = "proptest")]
pub mod strategies {
    use super::*;
    use crate::types::strategies as ts;
    use proptest::prelude::*;

    /// Every [`ServerMessage`] variant with arbitrary, consistent contents.
    pub fn server_message() -> BoxedStrategy<ServerMessage<'static>> {
        prop_oneof![
            (
                ts::point16(),
                any::<u16>(),
                any::<u16>(),
                any::<u8>(),
                ts::cursor()
            )
                .prop_map(|(position, tl, tf, visible, cursor)| {
                    ServerMessage::Init(CursorInit {
                        position,
                        trail_length: tl,
                        trail_frequency: tf,
                        visible,
                        cursor,
                    })
                }),
            Just(ServerMessage::Reset),
            (ts::point16(), any::<u8>(), ts::cursor()).prop_map(|(position, visible, cursor)| {
                ServerMessage::Set(CursorSet {
                    position,
                    visible,
                    cursor,
                })
            }),
            ts::point16().prop_map(ServerMessage::Move),
            Just(ServerMessage::Hide),
            (any::<u16>(), any::<u16>())
                .prop_map(|(length, frequency)| ServerMessage::Trail { length, frequency }),
            any::<u64>().prop_map(ServerMessage::InvalOne),
            Just(ServerMessage::InvalAll),
        ]
        .boxed()
    }
}
