//! A scripted in-memory server for tests and fuzzing: link replies, server messages, and a
//! session linked on main, display, cursor and inputs without any socket.
//!
//! [`fuzz_session`] is the body of the `client_session` fuzz target.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use spice_proto::ChannelType;
use spice_proto::caps::{self, Caps};
use spice_proto::header::{HeaderKind, write_message};
use spice_proto::link::{LinkHeader, LinkReply};
use spice_proto::main::{self as pmain, ChannelId, MouseMode};
use spice_proto::messages::ServerMessage;
use spice_proto::ticket::{PUBKEY_BYTES, TicketKey};
use spice_proto::wire::Encode;

use crate::event::Event;
use crate::session::{ConnId, Session, SessionConfig};

fn server_key() -> &'static [u8; PUBKEY_BYTES] {
    static KEY: OnceLock<[u8; PUBKEY_BYTES]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut rng = rand_core::OsRng;
        *TicketKey::generate(&mut rng)
            .expect("RSA key generation")
            .public_key_der()
    })
}

/// What a server sends to link a channel successfully: header, reply (with the mini header
/// offered when `mini`), then the OK link result (sent after the ticket in reality; a
/// client never reads ahead, so both can be fed at once).
pub fn link_reply_bytes(mini: bool) -> Vec<u8> {
    let mut common = Caps::from_caps(&[
        caps::common::PROTOCOL_AUTH_SELECTION,
        caps::common::AUTH_SPICE,
    ]);
    if mini {
        common.set(caps::common::MINI_HEADER);
    }
    let reply = LinkReply::new(*server_key(), common, Caps::new());
    let mut out = Vec::new();
    let body = reply.to_vec().expect("reply encodes");
    LinkHeader::new(body.len() as u32)
        .encode(&mut spice_proto::WriteBuf::new(&mut out))
        .expect("header encodes");
    out.extend_from_slice(&body);
    out.extend_from_slice(&0u32.to_le_bytes());
    out
}

/// A server message with a data header of `kind` (serial 1 for the full header).
pub fn server_message(kind: HeaderKind, serial: u64, msg: &ServerMessage<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    write_message(&mut out, kind, serial, msg.msg_type(), |w| {
        msg.encode_body(w)
    })
    .expect("message encodes");
    out
}

/// A raw message: header of `kind` with `msg_type` and `body` as given.
pub fn raw_message(kind: HeaderKind, serial: u64, msg_type: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_message(&mut out, kind, serial, msg_type, |w| {
        w.write_slice(body);
        Ok(())
    })
    .expect("raw message encodes");
    out
}

/// `MAIN_INIT` with session id 42 (no agent, server mouse mode).
pub fn main_init() -> ServerMessage<'static> {
    ServerMessage::Main(pmain::ServerMessage::Init(pmain::Init {
        session_id: 42,
        display_channels_hint: 1,
        supported_mouse_modes: MouseMode::SERVER | MouseMode::CLIENT,
        current_mouse_mode: MouseMode::SERVER,
        agent_connected: 0,
        agent_tokens: 10,
        multi_media_time: 1000,
        ram_hint: 0,
    }))
}

/// Connection ids of [`linked_session`].
#[derive(Debug, Clone, Copy)]
pub struct Linked {
    /// Main channel.
    pub main: ConnId,
    /// Display channel 0.
    pub display: ConnId,
    /// Cursor channel 0.
    pub cursor: ConnId,
    /// Inputs channel 0.
    pub inputs: ConnId,
}

/// A session whose main, display, cursor and inputs channels are linked (mini header), with
/// every event and every output byte consumed.
pub fn linked_session(config: SessionConfig, now: Instant) -> (Session, Linked) {
    let mut s = Session::new(config).expect("valid config");
    let kind = HeaderKind::Mini;
    let main = ConnId(0);
    s.receive(main, &link_reply_bytes(true), now).expect("main");
    s.receive(main, &server_message(kind, 1, &main_init()), now)
        .expect("main");
    let list = ServerMessage::Main(pmain::ServerMessage::ChannelsList(vec![
        ChannelId {
            channel_type: ChannelType::DISPLAY,
            id: 0,
        },
        ChannelId {
            channel_type: ChannelType::CURSOR,
            id: 0,
        },
        ChannelId {
            channel_type: ChannelType::INPUTS,
            id: 0,
        },
    ]));
    s.receive(main, &server_message(kind, 2, &list), now)
        .expect("main");
    let mut ids = Vec::new();
    while let Some(ev) = s.poll_event() {
        if let Event::OpenChannel {
            conn, channel_type, ..
        } = ev
        {
            ids.push((channel_type, conn));
        }
    }
    let find = |t| {
        ids.iter()
            .find(|(ty, _)| *ty == t)
            .map(|(_, c)| *c)
            .expect("channel opened")
    };
    let linked = Linked {
        main,
        display: find(ChannelType::DISPLAY),
        cursor: find(ChannelType::CURSOR),
        inputs: find(ChannelType::INPUTS),
    };
    for c in [linked.display, linked.cursor, linked.inputs] {
        s.receive(c, &link_reply_bytes(true), now).expect("link");
    }
    while s.poll_event().is_some() {}
    let mut sink = Vec::new();
    for (c, ..) in s.connections().collect::<Vec<_>>() {
        s.transmit(c, &mut sink);
    }
    (s, linked)
}

/// Fuzz body (`client_session`): a linked session (see [`linked_session`]) is fed `data` as
/// chunks `[selector u8][len u8][len bytes]`: the selector's low two bits pick main,
/// display, cursor or inputs; bit 2 runs the timers 100 ms later first. Every event is
/// drained. Never panics, whatever the bytes.
pub fn fuzz_session(data: &[u8]) {
    let start = Instant::now();
    let config = SessionConfig {
        max_message_size: 1 << 20,
        max_image_pixels: 1 << 16,
        max_surface_pixels: 1 << 20,
        pixmap_cache_pixels: 1 << 16,
        glz_window_pixels: 1 << 16,
        max_buffered: 1 << 20,
        ..SessionConfig::default()
    };
    let (mut s, l) = linked_session(config, start);
    let conns = [l.main, l.display, l.cursor, l.inputs];
    let mut now = start;
    let mut rest = data;
    let mut sink = Vec::new();
    while let [sel, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (chunk, after) = tail.split_at(n);
        if sel & 4 != 0 {
            now += Duration::from_millis(100);
            s.handle_timeout(now);
        }
        let _ = s.receive(conns[usize::from(sel & 3)], chunk, now);
        // Exercise the input API on whatever state the session is in.
        if sel & 8 != 0 {
            let _ = s.mouse_motion(1, -1);
            let _ = s.key_down(0x1e, sel & 16 != 0);
        }
        while s.poll_event().is_some() {}
        for c in conns {
            sink.clear();
            s.transmit(c, &mut sink);
        }
        rest = after;
    }
    let _ = s.next_deadline();
}

/// Like [`link_reply_bytes`], with the server's channel caps set to `channel_caps` (for
/// example `SPICE_SPICEVMC_CAP_DATA_COMPRESS_LZ4` on a passthrough channel).
pub fn link_reply_with_caps(mini: bool, channel_caps: &[u32]) -> Vec<u8> {
    let mut common = Caps::from_caps(&[
        caps::common::PROTOCOL_AUTH_SELECTION,
        caps::common::AUTH_SPICE,
    ]);
    if mini {
        common.set(caps::common::MINI_HEADER);
    }
    let reply = LinkReply::new(*server_key(), common, Caps::from_caps(channel_caps));
    let mut out = Vec::new();
    let body = reply.to_vec().expect("reply encodes");
    LinkHeader::new(body.len() as u32)
        .encode(&mut spice_proto::WriteBuf::new(&mut out))
        .expect("header encodes");
    out.extend_from_slice(&body);
    out.extend_from_slice(&0u32.to_le_bytes());
    out
}
