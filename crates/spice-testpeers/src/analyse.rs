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
    /// `(direction, msg_type, name)` of every data message, in order per direction.
    pub messages: Vec<(Direction, u16, &'static str)>,
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// One decoded data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Who sent it.
    pub direction: Direction,
    /// Message type.
    pub msg_type: u16,
    /// Message name.
    pub name: &'static str,
    /// Header plus body bytes.
    pub wire_len: usize,
    /// The message body as it was on the wire (decode it with the channel's message enum).
    pub body: Vec<u8>,
}

/// The link stage both sides agreed on.
#[derive(Debug, Clone)]
struct Linked {
    mess: LinkMess,
    kind: HeaderKind,
    framers: [Framer; 2],
}

/// Decodes one SPICE connection incrementally, from both directions' bytes as they arrive:
/// the link stage of each side, then every data message, each re-encoded and compared with the
/// bytes on the wire. Used on whole recordings ([`analyse`]) and live (`spice-dump`).
#[derive(Debug, Default)]
pub struct ConnectionDecoder {
    /// Unconsumed bytes per direction (0 = client to server, 1 = server to client).
    pending: [Vec<u8>; 2],
    /// Offset of `pending[i][0]` in its stream, for error messages.
    consumed: [usize; 2],
    mess: Option<(LinkMess, usize)>,
    reply: Option<(LinkReply, usize)>,
    linked: Option<Linked>,
}

fn dir_index(d: Direction) -> usize {
    match d {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

impl ConnectionDecoder {
    /// A decoder at the start of a connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// The client's link message, once seen.
    pub fn link_mess(&self) -> Option<&LinkMess> {
        self.mess.as_ref().map(|m| &m.0)
    }

    /// Whether the mini header is in use (`None` before the link stage completed).
    pub fn mini_header(&self) -> Option<bool> {
        self.linked.as_ref().map(|l| l.kind == HeaderKind::Mini)
    }

    /// Feeds bytes sent in `direction`; returns the messages that became complete.
    pub fn push(&mut self, direction: Direction, bytes: &[u8]) -> Result<Vec<Decoded>, String> {
        self.pending[dir_index(direction)].extend_from_slice(bytes);
        let mut out = Vec::new();
        self.progress_link()?;
        if self.linked.is_some() {
            for d in [Direction::ClientToServer, Direction::ServerToClient] {
                self.drain(d, &mut out)?;
            }
        }
        Ok(out)
    }

    fn take(&mut self, i: usize, n: usize) {
        self.pending[i].drain(..n);
        self.consumed[i] += n;
    }

    fn progress_link(&mut self) -> Result<(), String> {
        if self.mess.is_none() {
            let c = &self.pending[0];
            if c.len() >= LinkHeader::SIZE {
                let hdr = LinkHeader::parse(&c[..LinkHeader::SIZE])
                    .map_err(|e| format!("client link header: {e}"))?;
                let end = LinkHeader::SIZE + hdr.size as usize;
                if c.len() >= end {
                    let mess = LinkMess::decode_body(&c[LinkHeader::SIZE..end])
                        .map_err(|e| format!("link message: {e}"))?;
                    let re = mess
                        .to_link_bytes()
                        .map_err(|e| format!("link message encode: {e}"))?;
                    if re != c[..end] {
                        return Err("link message re-encodes differently".into());
                    }
                    self.take(0, end);
                    self.mess = Some((mess, end));
                }
            }
        }
        if self.reply.is_none() {
            let s = &self.pending[1];
            if s.len() >= LinkHeader::SIZE {
                let hdr = LinkHeader::parse(&s[..LinkHeader::SIZE])
                    .map_err(|e| format!("server link header: {e}"))?;
                let end = LinkHeader::SIZE + hdr.size as usize;
                if s.len() >= end {
                    let reply = LinkReply::decode_body(&s[LinkHeader::SIZE..end])
                        .map_err(|e| format!("link reply: {e}"))?;
                    let re = reply
                        .to_link_bytes()
                        .map_err(|e| format!("link reply encode: {e}"))?;
                    if re != s[..end] {
                        return Err("link reply re-encodes differently".into());
                    }
                    if !reply.error.is_ok() {
                        return Err(format!("server refused the link: {}", reply.error));
                    }
                    self.take(1, end);
                    self.reply = Some((reply, end));
                }
            }
        }
        if self.linked.is_some() {
            return Ok(());
        }
        let (Some((mess, _)), Some((reply, _))) = (&self.mess, &self.reply) else {
            return Ok(());
        };
        // Client: optional auth mechanism word, then the 128-byte ticket. Server: result word.
        let selection = mess.common_caps.has(common::PROTOCOL_AUTH_SELECTION)
            && reply.common_caps.has(common::PROTOCOL_AUTH_SELECTION);
        let c_need = if selection { 4 } else { 0 } + spice_proto::ticket::ENCRYPTED_TICKET_BYTES;
        if self.pending[0].len() < c_need || self.pending[1].len() < 4 {
            return Ok(());
        }
        if selection {
            let mech = u32_at(&self.pending[0], 0).unwrap_or_default();
            if mech != common::AUTH_SPICE {
                return Err(format!("auth mechanism {mech}, expected SPICE"));
            }
        }
        let result = u32_at(&self.pending[1], 0).unwrap_or_default();
        if result != 0 {
            return Err(format!("link result {result}"));
        }
        let mini =
            mess.common_caps.has(common::MINI_HEADER) && reply.common_caps.has(common::MINI_HEADER);
        let kind = HeaderKind::from_mini(mini);
        let mess = mess.clone();
        self.take(0, c_need);
        self.take(1, 4);
        self.linked = Some(Linked {
            mess,
            kind,
            framers: [Framer::new(kind, MAX_BODY), Framer::new(kind, MAX_BODY)],
        });
        Ok(())
    }

    fn drain(&mut self, direction: Direction, out: &mut Vec<Decoded>) -> Result<(), String> {
        let i = dir_index(direction);
        loop {
            let Some(linked) = self.linked.as_mut() else {
                return Ok(());
            };
            let buf = &self.pending[i];
            let pos = self.consumed[i];
            let info = match linked.framers[i]
                .next_frame(buf)
                .map_err(|e| format!("{direction} at {pos}: {e}"))?
            {
                Frame::Complete(info) => info,
                Frame::Need(_) => return Ok(()),
            };
            let body = &buf[info.body.clone()];
            let msg = AnyMessage::decode(linked.mess.channel_type, direction, info.msg_type, body)
                .map_err(|e| format!("{direction} at {pos}: {e}"))?;
            let mut re = Vec::with_capacity(info.total_len);
            match linked.kind {
                HeaderKind::Mini => MiniHeader {
                    msg_type: info.msg_type,
                    size: body.len() as u32,
                }
                .encode(&mut WriteBuf::new(&mut re)),
                HeaderKind::Full => DataHeader {
                    serial: info.serial,
                    msg_type: info.msg_type,
                    size: body.len() as u32,
                    sub_list: info.sub_list,
                }
                .encode(&mut WriteBuf::new(&mut re)),
            }
            .map_err(|e| format!("header encode: {e}"))?;
            msg.encode_body(&mut WriteBuf::new(&mut re))
                .map_err(|e| format!("{direction} {} at {pos}: encode: {e}", msg.name()))?;
            if re != buf[..info.total_len] {
                let diff = re
                    .iter()
                    .zip(&buf[..info.total_len])
                    .position(|(a, b)| a != b);
                return Err(format!(
                    "{direction} {} ({} bytes) at {pos} re-encodes differently ({} bytes, first difference at {diff:?})",
                    msg.name(),
                    info.total_len,
                    re.len()
                ));
            }
            out.push(Decoded {
                direction,
                msg_type: info.msg_type,
                name: msg.name(),
                wire_len: info.total_len,
                body: body.to_vec(),
            });
            self.take(i, info.total_len);
        }
    }
}

/// Decodes a whole recorded connection, checking that each link unit and each message
/// re-encodes to the bytes that were on the wire. A message cut off by the end of the
/// recording is ignored.
pub fn analyse(conn: &Connection) -> Result<ConnectionSummary, String> {
    let ctx = |e: String| format!("connection {}: {e}", conn.index);
    let mut dec = ConnectionDecoder::new();
    let mut messages = Vec::new();
    for (rd, d) in [
        (
            recording::Direction::ClientToServer,
            Direction::ClientToServer,
        ),
        (
            recording::Direction::ServerToClient,
            Direction::ServerToClient,
        ),
    ] {
        let got = dec.push(d, conn.bytes(rd)).map_err(ctx)?;
        messages.extend(got.into_iter().map(|m| (m.direction, m.msg_type, m.name)));
    }
    let mess = dec
        .link_mess()
        .ok_or_else(|| ctx("no complete link message".into()))?;
    let mini_header = dec
        .mini_header()
        .ok_or_else(|| ctx("link stage incomplete".into()))?;
    Ok(ConnectionSummary {
        channel: mess.channel_type,
        channel_id: mess.channel_id,
        mini_header,
        messages,
    })
}
