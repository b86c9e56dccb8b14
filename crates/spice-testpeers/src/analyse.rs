//! Walks a recorded connection with spice-proto: the link stage of both directions, then every
//! data message, each framed, decoded to a typed value and re-encoded. Anything that does not
//! decode, or re-encodes to different bytes, is reported with the connection, direction,
//! message number and byte offset.

use spice_proto::caps::common;
use spice_proto::framer::{Frame, Framer};
use spice_proto::header::{DataHeader, HeaderKind, MiniHeader};
use spice_proto::link::{LinkHeader, LinkMess, LinkReply};
use spice_proto::messages::AnyMessage;
use spice_proto::{ChannelType, Direction, Encode, WriteBuf};

use crate::recording::{self, Connection};

/// Largest body accepted from a recording (spice-server's biggest messages are image draws).
pub const MAX_BODY: u32 = 64 << 20;

/// What one connection held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSummary {
    /// Channel type from the client's link message.
    pub channel: ChannelType,
    /// Channel instance.
    pub channel_id: u8,
    /// Whether the mini header was negotiated.
    pub mini_header: bool,
    /// `(direction, msg_type, name)` of every data message, in order per direction
    /// (client messages first, then server messages).
    pub messages: Vec<(Direction, u16, &'static str)>,
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, String> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| format!("stream ends before offset {}", off + 4))
}

/// Decodes the whole connection, checking that each link unit and each message re-encodes to
/// the bytes that were on the wire.
pub fn analyse(conn: &Connection) -> Result<ConnectionSummary, String> {
    let c2s = conn.bytes(recording::Direction::ClientToServer);
    let s2c = conn.bytes(recording::Direction::ServerToClient);
    let ctx = |what: &str| format!("connection {}: {what}", conn.index);

    // Client: link header + SpiceLinkMess.
    let hdr = LinkHeader::parse(
        c2s.get(..LinkHeader::SIZE)
            .ok_or_else(|| ctx("short link header"))?,
    )
    .map_err(|e| ctx(&format!("client link header: {e}")))?;
    let mess_end = LinkHeader::SIZE + hdr.size as usize;
    let mess = LinkMess::decode_body(
        c2s.get(LinkHeader::SIZE..mess_end)
            .ok_or_else(|| ctx("short link message"))?,
    )
    .map_err(|e| ctx(&format!("link message: {e}")))?;
    let re = mess
        .to_link_bytes()
        .map_err(|e| ctx(&format!("link message encode: {e}")))?;
    if re != c2s[..mess_end] {
        return Err(ctx("link message re-encodes differently"));
    }
    // Server: link header + SpiceLinkReply.
    let rhdr = LinkHeader::parse(
        s2c.get(..LinkHeader::SIZE)
            .ok_or_else(|| ctx("short reply header"))?,
    )
    .map_err(|e| ctx(&format!("server link header: {e}")))?;
    let reply_end = LinkHeader::SIZE + rhdr.size as usize;
    let reply = LinkReply::decode_body(
        s2c.get(LinkHeader::SIZE..reply_end)
            .ok_or_else(|| ctx("short link reply"))?,
    )
    .map_err(|e| ctx(&format!("link reply: {e}")))?;
    let re = reply
        .to_link_bytes()
        .map_err(|e| ctx(&format!("link reply encode: {e}")))?;
    if re != s2c[..reply_end] {
        return Err(ctx("link reply re-encodes differently"));
    }
    if !reply.error.is_ok() {
        return Err(ctx(&format!("server refused the link: {}", reply.error)));
    }
    // Client: optional auth mechanism word, then the 128-byte ticket. Server: the result word.
    let selection = mess.common_caps.has(common::PROTOCOL_AUTH_SELECTION)
        && reply.common_caps.has(common::PROTOCOL_AUTH_SELECTION);
    let mut c_pos = mess_end;
    if selection {
        let mech = u32_at(c2s, c_pos).map_err(|e| ctx(&e))?;
        if mech != common::AUTH_SPICE {
            return Err(ctx(&format!("auth mechanism {mech}, expected SPICE")));
        }
        c_pos += 4;
    }
    c_pos += spice_proto::ticket::ENCRYPTED_TICKET_BYTES;
    let result = u32_at(s2c, reply_end).map_err(|e| ctx(&e))?;
    if result != 0 {
        return Err(ctx(&format!("link result {result}")));
    }
    let s_pos = reply_end + 4;
    let mini =
        mess.common_caps.has(common::MINI_HEADER) && reply.common_caps.has(common::MINI_HEADER);
    let kind = HeaderKind::from_mini(mini);

    let mut messages = Vec::new();
    for (direction, stream, start) in [
        (Direction::ClientToServer, c2s, c_pos),
        (Direction::ServerToClient, s2c, s_pos),
    ] {
        let mut framer = Framer::new(kind, MAX_BODY);
        let mut pos = start.min(stream.len());
        while pos < stream.len() {
            let rest = &stream[pos..];
            let info = match framer
                .next_frame(rest)
                .map_err(|e| ctx(&format!("{direction} at {pos}: {e}")))?
            {
                Frame::Complete(info) => info,
                // The recording stops where the connection was closed; a cut-off last message
                // is the only thing that may be incomplete.
                Frame::Need(_) => break,
            };
            let body = &rest[info.body.clone()];
            let msg = AnyMessage::decode(mess.channel_type, direction, info.msg_type, body)
                .map_err(|e| ctx(&format!("{direction} at {pos}: {e}")))?;
            let mut out = Vec::with_capacity(info.total_len);
            match kind {
                HeaderKind::Mini => MiniHeader {
                    msg_type: info.msg_type,
                    size: body.len() as u32,
                }
                .encode(&mut WriteBuf::new(&mut out)),
                HeaderKind::Full => DataHeader {
                    serial: info.serial,
                    msg_type: info.msg_type,
                    size: body.len() as u32,
                    sub_list: info.sub_list,
                }
                .encode(&mut WriteBuf::new(&mut out)),
            }
            .map_err(|e| ctx(&format!("header encode: {e}")))?;
            msg.encode_body(&mut WriteBuf::new(&mut out))
                .map_err(|e| ctx(&format!("{direction} {} at {pos}: encode: {e}", msg.name())))?;
            if out != rest[..info.total_len] {
                let diff = out
                    .iter()
                    .zip(&rest[..info.total_len])
                    .position(|(a, b)| a != b);
                return Err(ctx(&format!(
                    "{direction} {} ({} bytes) at {pos} re-encodes differently ({} bytes, first difference at {diff:?})",
                    msg.name(),
                    info.total_len,
                    out.len()
                )));
            }
            messages.push((direction, info.msg_type, msg.name()));
            pos += info.total_len;
        }
    }
    Ok(ConnectionSummary {
        channel: mess.channel_type,
        channel_id: mess.channel_id,
        mini_header: mini,
        messages,
    })
}
