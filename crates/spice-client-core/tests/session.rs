//! The session against a scripted in-memory server: link, main channel, acks, pings,
//! display rendering, cursor, inputs bunching, waits, streams, agent tokens, and malformed
//! input that must give error events, never panics.

use std::time::{Duration, Instant};

use spice_client_core::testing::{
    Linked, link_reply_bytes, linked_session, main_init, raw_message, server_message,
};
use spice_client_core::{ChannelError, ConnId, Event, Session, SessionConfig};
use spice_proto::base::{self, SetAck};
use spice_proto::display::{self as pd};
use spice_proto::framer::{Frame, Framer};
use spice_proto::header::HeaderKind;
use spice_proto::inputs::{self as pi, MouseButton, MouseButtonMask};
use spice_proto::main as pm;
use spice_proto::messages::{ClientMessage, ServerMessage};
use spice_proto::types::{
    Brush, Clip, CursorFlags, CursorHeader, CursorType, DisplayBase, Point16, QMask, Rect, Ropd,
    StreamDataHeader, StreamFlags, SurfaceFlags, SurfaceFormat, VideoCodecType,
};
use spice_proto::{ChannelType, cursor as pc};

const MINI: HeaderKind = HeaderKind::Mini;

/// Decodes everything the session wants to send on `conn` (mini header).
fn sent(s: &mut Session, conn: ConnId, ty: ChannelType) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    s.transmit(conn, &mut out);
    let mut framer = Framer::new(MINI, 1 << 20);
    let mut pos = 0;
    let mut msgs = Vec::new();
    while pos < out.len() {
        let Frame::Complete(info) = framer.next_frame(&out[pos..]).unwrap() else {
            panic!("partial message in output")
        };
        let body = out[pos + info.body.start..pos + info.body.end].to_vec();
        ClientMessage::decode(ty, info.msg_type, &body).expect("client message decodes");
        msgs.push((info.msg_type, body));
        pos += info.total_len;
    }
    msgs
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn setup() -> (Session, Linked, Instant) {
    let now = Instant::now();
    let (s, l) = linked_session(SessionConfig::default(), now);
    (s, l, now)
}

fn feed(s: &mut Session, conn: ConnId, msg: &ServerMessage<'_>, now: Instant) {
    s.receive(conn, &server_message(MINI, 0, msg), now).unwrap();
}

#[test]
fn main_channel_flow() {
    let now = Instant::now();
    let mut s = Session::new(SessionConfig::default()).unwrap();
    assert!(matches!(
        s.poll_event(),
        Some(Event::OpenChannel {
            conn: ConnId(0),
            channel_type: ChannelType::MAIN,
            ..
        })
    ));
    let mut link = Vec::new();
    s.transmit(ConnId(0), &mut link);
    assert_eq!(&link[..4], b"REDQ");
    // The reply arrives one byte at a time.
    for b in link_reply_bytes(true) {
        s.receive(ConnId(0), &[b], now).unwrap();
    }
    let mut auth = Vec::new();
    s.transmit(ConnId(0), &mut auth);
    assert_eq!(auth.len(), 4 + 128, "auth mechanism + RSA ticket");
    assert!(matches!(s.poll_event(), Some(Event::ChannelLinked { .. })));
    feed(&mut s, ConnId(0), &main_init(), now);
    assert_eq!(s.session_id(), Some(42));
    let ev = events(&mut s);
    assert!(matches!(ev[0], Event::MainInit { session_id: 42, .. }));
    let out = sent(&mut s, ConnId(0), ChannelType::MAIN);
    assert_eq!(out, vec![(pm::ClientMessage::ATTACH_CHANNELS, vec![])]);
    // Channels of other types are reported, not opened; known ones link with session 42.
    let list = ServerMessage::Main(pm::ServerMessage::ChannelsList(vec![
        pm::ChannelId {
            channel_type: ChannelType::TUNNEL,
            id: 0,
        },
        pm::ChannelId {
            channel_type: ChannelType::DISPLAY,
            id: 0,
        },
    ]));
    feed(&mut s, ConnId(0), &list, now);
    let ev = events(&mut s);
    assert!(matches!(
        ev[0],
        Event::ChannelSkipped {
            channel_type: ChannelType::TUNNEL,
            ..
        }
    ));
    let Event::OpenChannel {
        conn,
        channel_type: ChannelType::DISPLAY,
        ..
    } = ev[1]
    else {
        panic!("{ev:?}")
    };
    let mut l = Vec::new();
    s.transmit(conn, &mut l);
    assert_eq!(
        u32::from_le_bytes(l[16..20].try_into().unwrap()),
        42,
        "connection id"
    );
    // Display channel: DISPLAY_INIT right after the link.
    s.receive(conn, &link_reply_bytes(true), now).unwrap();
    let mut o = Vec::new();
    s.transmit(conn, &mut o);
    let init = &o[o.len() - 20..];
    assert_eq!(&init[..6], &[101, 0, 14, 0, 0, 0]);
    assert_eq!(init[6], 1, "pixmap cache id");
    // ram_hint 0: the 12 MiB minimum, in pixels.
    assert_eq!(&init[16..20], &((12u32 << 20) / 4).to_le_bytes());
}

#[test]
fn ack_window_and_ping() {
    let (mut s, l, now) = setup();
    let ack = ServerMessage::Base(base::ServerMessage::SetAck(SetAck {
        generation: 7,
        window: 3,
    }));
    feed(&mut s, l.display, &ack, now);
    assert_eq!(
        sent(&mut s, l.display, ChannelType::DISPLAY),
        vec![(base::client_msg::ACK_SYNC, 7u32.to_le_bytes().to_vec())]
    );
    for i in 0..6 {
        feed(
            &mut s,
            l.display,
            &ServerMessage::Display(pd::ServerMessage::Mark),
            now,
        );
        let out = sent(&mut s, l.display, ChannelType::DISPLAY);
        if i % 3 == 2 {
            assert_eq!(out, vec![(base::client_msg::ACK, vec![])], "message {i}");
        } else {
            assert!(out.is_empty(), "message {i}: {out:?}");
        }
    }
    let ping = ServerMessage::Base(base::ServerMessage::Ping(base::Ping {
        id: 5,
        timestamp: 0x1122334455,
        data: &[0; 100],
    }));
    feed(&mut s, l.main, &ping, now);
    let mut pong = 5u32.to_le_bytes().to_vec();
    pong.extend_from_slice(&0x1122334455u64.to_le_bytes());
    assert_eq!(
        sent(&mut s, l.main, ChannelType::MAIN),
        vec![(base::client_msg::PONG, pong)]
    );
}

#[test]
fn notify_disconnecting_name() {
    let (mut s, l, now) = setup();
    let n = ServerMessage::Base(base::ServerMessage::Notify(base::Notify {
        time_stamp: 0,
        severity: base::NotifySeverity(1),
        visibility: base::NotifyVisibility(2),
        what: 0,
        message: b"hello\0",
        nul_terminated: false,
    }));
    feed(&mut s, l.main, &n, now);
    feed(
        &mut s,
        l.main,
        &ServerMessage::Main(pm::ServerMessage::Name(b"vm\0")),
        now,
    );
    let d = ServerMessage::Base(base::ServerMessage::Disconnecting(base::Disconnecting {
        time_stamp: 0,
        reason: spice_proto::link::LinkErr::OK,
    }));
    feed(&mut s, l.cursor, &d, now);
    let ev = events(&mut s);
    assert!(matches!(&ev[0], Event::Notify { severity: 1, message, .. } if message == "hello"));
    assert!(matches!(&ev[1], Event::Name(n) if n == "vm"));
    assert!(matches!(&ev[2], Event::ServerDisconnecting { conn, .. } if *conn == l.cursor));
}

fn surface_create(id: u32, w: u32, h: u32) -> ServerMessage<'static> {
    ServerMessage::Display(pd::ServerMessage::SurfaceCreate(pd::SurfaceCreate {
        surface_id: id,
        width: w,
        height: h,
        format: SurfaceFormat::FMT_32_XRGB,
        flags: if id == 0 {
            SurfaceFlags::PRIMARY
        } else {
            SurfaceFlags::empty()
        },
    }))
}

fn rect(left: i32, top: i32, right: i32, bottom: i32) -> Rect {
    Rect {
        top,
        left,
        bottom,
        right,
    }
}

fn fill(surface_id: u32, r: Rect, color: u32) -> ServerMessage<'static> {
    ServerMessage::Display(pd::ServerMessage::DrawFill(pd::DrawFill {
        base: DisplayBase {
            surface_id,
            bbox: r,
            clip: Clip::None,
        },
        brush: Brush::Solid(color),
        rop_descriptor: Ropd::OP_PUT,
        mask: QMask::default(),
    }))
}

#[test]
fn display_surfaces_draws_and_mark() {
    let (mut s, l, now) = setup();
    feed(&mut s, l.display, &surface_create(0, 32, 16), now);
    feed(
        &mut s,
        l.display,
        &fill(0, rect(2, 3, 10, 8), 0x00ff8000),
        now,
    );
    feed(
        &mut s,
        l.display,
        &ServerMessage::Display(pd::ServerMessage::Mark),
        now,
    );
    let ev = events(&mut s);
    assert!(matches!(
        ev[0],
        Event::SurfaceCreated {
            surface_id: 0,
            width: 32,
            height: 16,
            primary: true,
            ..
        }
    ));
    assert!(
        matches!(ev[1], Event::RegionChanged { surface_id: 0, rect: r, .. } if r == rect(2, 3, 10, 8))
    );
    assert!(matches!(ev[2], Event::PrimaryMarked { display: 0 }));
    let surf = s.surface(0, 0).unwrap();
    assert_eq!(surf.pixel(2, 3).unwrap() & 0xffffff, 0xff8000);
    assert_eq!(surf.pixel(10, 3).unwrap() & 0xffffff, 0);
    // A draw on a surface that does not exist is a render error; the channel goes on.
    feed(&mut s, l.display, &fill(9, rect(0, 0, 1, 1), 0), now);
    let ev = events(&mut s);
    assert!(
        matches!(
            ev[0],
            Event::RenderError {
                msg: "draw_fill",
                ..
            }
        ),
        "{ev:?}"
    );
    feed(
        &mut s,
        l.display,
        &ServerMessage::Display(pd::ServerMessage::SurfaceDestroy(0)),
        now,
    );
    assert!(matches!(
        events(&mut s)[0],
        Event::SurfaceDestroyed { surface_id: 0, .. }
    ));
    assert!(s.surface(0, 0).is_none());
}

#[test]
fn cursor_shapes_cache_and_moves() {
    let (mut s, l, now) = setup();
    let data = [1u8, 2, 3, 4];
    let set = |flags, data: &'static [u8]| {
        ServerMessage::Cursor(pc::ServerMessage::Set(pc::CursorSet {
            position: Point16 { x: 5, y: 6 },
            visible: 1,
            cursor: spice_proto::types::Cursor {
                flags,
                header: Some(CursorHeader {
                    unique: 77,
                    cursor_type: CursorType::ALPHA,
                    width: 1,
                    height: 1,
                    hot_spot_x: 0,
                    hot_spot_y: 0,
                }),
                data,
            },
        }))
    };
    let data: &'static [u8] = Box::leak(Box::new(data));
    feed(&mut s, l.cursor, &set(CursorFlags::CACHE_ME, data), now);
    feed(&mut s, l.cursor, &set(CursorFlags::FROM_CACHE, &[]), now);
    feed(
        &mut s,
        l.cursor,
        &ServerMessage::Cursor(pc::ServerMessage::Move(Point16 { x: 9, y: 8 })),
        now,
    );
    feed(
        &mut s,
        l.cursor,
        &ServerMessage::Cursor(pc::ServerMessage::InvalOne(77)),
        now,
    );
    feed(&mut s, l.cursor, &set(CursorFlags::FROM_CACHE, &[]), now);
    let ev = events(&mut s);
    let Event::CursorSet {
        shape: Some(a),
        x: 5,
        y: 6,
        visible: true,
    } = &ev[0]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(a.rgba, [3, 2, 1, 4]);
    let Event::CursorSet { shape: Some(b), .. } = &ev[1] else {
        panic!("{ev:?}")
    };
    assert_eq!(a, b);
    assert!(matches!(ev[2], Event::CursorMoved { x: 9, y: 8 }));
    // A cursor the cache no longer has: the cursor channel fails with a named error.
    assert!(
        matches!(
            &ev[3],
            Event::ChannelError {
                channel_type: ChannelType::CURSOR,
                error: ChannelError::Protocol { msg: "set", .. },
                ..
            }
        ),
        "{ev:?}"
    );
}

#[test]
fn inputs_keys_and_motion_bunching() {
    let (mut s, l, now) = setup();
    s.key_down(0x1d, true).unwrap();
    s.key_up(0x1d, true).unwrap();
    let out = sent(&mut s, l.inputs, ChannelType::INPUTS);
    assert_eq!(
        out[0],
        (
            pi::ClientMessage::KEY_DOWN,
            0x1de0u32.to_le_bytes().to_vec()
        )
    );
    assert_eq!(
        out[1],
        (pi::ClientMessage::KEY_UP, 0x9de0u32.to_le_bytes().to_vec())
    );
    for _ in 0..10 {
        s.mouse_motion(1, 2).unwrap();
    }
    let out = sent(&mut s, l.inputs, ChannelType::INPUTS);
    assert_eq!(out.len(), 8, "at most 2 x MOTION_ACK_BUNCH unacknowledged");
    assert_eq!(s.unacked_motion(), 8);
    let ack = ServerMessage::Inputs(pi::InputsServerMessage::MouseMotionAck);
    feed(&mut s, l.inputs, &ack, now);
    let out = sent(&mut s, l.inputs, ChannelType::INPUTS);
    // The two held motions come as one, summed.
    let mut body = 2i32.to_le_bytes().to_vec();
    body.extend_from_slice(&4i32.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    assert_eq!(out, vec![(pi::ClientMessage::MOUSE_MOTION, body)]);
    s.mouse_press(MouseButton::LEFT).unwrap();
    s.mouse_release(MouseButton::LEFT).unwrap();
    let out = sent(&mut s, l.inputs, ChannelType::INPUTS);
    assert_eq!(out[0], (pi::ClientMessage::MOUSE_PRESS, vec![1, 1, 0]));
    assert_eq!(out[1], (pi::ClientMessage::MOUSE_RELEASE, vec![1, 0, 0]));
    let _ = MouseButtonMask::LEFT;
}

#[test]
fn wait_for_channels_holds_until_the_other_channel_gets_there() {
    let (mut s, l, now) = setup();
    // Display waits for cursor serial 2 before MARK.
    let wait = ServerMessage::Base(base::ServerMessage::WaitForChannels(vec![
        base::WaitForChannel {
            channel_type: ChannelType::CURSOR,
            channel_id: 0,
            message_serial: 2,
        },
    ]));
    feed(&mut s, l.display, &wait, now);
    feed(
        &mut s,
        l.display,
        &ServerMessage::Display(pd::ServerMessage::Mark),
        now,
    );
    assert!(events(&mut s).is_empty(), "MARK must wait");
    let hide = ServerMessage::Cursor(pc::ServerMessage::Hide);
    feed(&mut s, l.cursor, &hide, now);
    assert!(matches!(events(&mut s)[..], [Event::CursorHidden]));
    feed(&mut s, l.cursor, &hide, now);
    let ev = events(&mut s);
    assert!(
        matches!(ev[..], [Event::CursorHidden, Event::PrimaryMarked { .. }]),
        "{ev:?}"
    );
}

fn mjpeg_frame(w: u32, h: u32, bgrx: [u8; 4]) -> Vec<u8> {
    let px: Vec<u8> = bgrx
        .iter()
        .copied()
        .cycle()
        .take((w * h * 4) as usize)
        .collect();
    let mut out = Vec::new();
    spice_codecs::jpeg::encode(
        &spice_codecs::jpeg::JpegSource {
            data: &px,
            width: w,
            height: h,
            stride: w as usize * 4,
            format: spice_codecs::jpeg::JpegSourceFormat::Bgrx32,
            top_down: true,
        },
        90,
        &mut out,
    )
    .unwrap();
    out
}

/// STREAM_CREATE of a top-down MJPEG stream `id` of `side` x `side` pixels drawn at `dest`
/// of surface 0.
fn mjpeg_stream_create(id: u32, side: u32, dest: Rect) -> ServerMessage<'static> {
    ServerMessage::Display(pd::ServerMessage::StreamCreate(pd::StreamCreate {
        surface_id: 0,
        id,
        flags: StreamFlags::TOP_DOWN,
        codec_type: VideoCodecType::MJPEG,
        stamp: 0,
        stream_width: side,
        stream_height: side,
        src_width: side,
        src_height: side,
        dest,
        clip: Clip::None,
    }))
}

/// STREAM_DATA of stream `id` stamped `mm`.
fn mjpeg_stream_data(id: u32, mm: u32, frame: &[u8]) -> ServerMessage<'_> {
    ServerMessage::Display(pd::ServerMessage::StreamData(pd::StreamData {
        header: StreamDataHeader {
            id,
            multi_media_time: mm,
        },
        data: frame,
    }))
}

#[test]
fn mjpeg_stream_drawn_and_reported() {
    let (mut s, l, now) = setup();
    feed(&mut s, l.display, &surface_create(0, 64, 32), now);
    let create = mjpeg_stream_create(3, 16, rect(8, 8, 24, 24));
    feed(&mut s, l.display, &create, now);
    let act = ServerMessage::Display(pd::ServerMessage::StreamActivateReport(
        pd::StreamActivateReport {
            stream_id: 3,
            unique_id: 99,
            max_window_size: 2,
            timeout_ms: 500,
        },
    ));
    feed(&mut s, l.display, &act, now);
    events(&mut s);
    let frame = mjpeg_frame(16, 16, [0, 0, 255, 0]);
    let data = |mm| mjpeg_stream_data(3, mm, &frame);
    feed(&mut s, l.display, &data(1010), now);
    // MAIN_INIT said 1000 at `now`: the frame is shown 10 ms later (video sync).
    assert!(events(&mut s).is_empty());
    assert_eq!(s.display_channel(0).unwrap().queued_frames(), 1);
    assert_eq!(s.next_deadline(), Some(now + Duration::from_millis(10)));
    s.handle_timeout(now + Duration::from_millis(9));
    assert!(events(&mut s).is_empty());
    s.handle_timeout(now + Duration::from_millis(10));
    let ev = events(&mut s);
    assert!(
        matches!(ev[0], Event::RegionChanged { rect: r, .. } if r == rect(8, 8, 24, 24)),
        "{ev:?}"
    );
    // The frame's stamp, and when to present it: MAIN_INIT said 1000 at `now`.
    assert!(
        matches!(
            ev[1],
            Event::StreamFrame {
                display: 0,
                stream_id: 3,
                mm_time: 1010
            }
        ),
        "{ev:?}"
    );
    assert_eq!(
        s.presentation_time(1010),
        Some(now + Duration::from_millis(10))
    );
    assert_eq!(
        s.presentation_time(990),
        Some(now - Duration::from_millis(10))
    );
    let p = s.surface(0, 0).unwrap().pixel(15, 15).unwrap();
    assert!(
        (p >> 16 & 0xff) > 240 && (p & 0xff) < 16,
        "red expected, got {p:#x}"
    );
    assert!(sent(&mut s, l.display, ChannelType::DISPLAY).is_empty());
    // Nothing queued: the deadline is the report timeout.
    assert_eq!(s.next_deadline(), Some(now + Duration::from_millis(500)));
    feed(&mut s, l.display, &data(1020), now);
    let out = sent(&mut s, l.display, ChannelType::DISPLAY);
    assert_eq!(out.len(), 1, "report after max_window_size frames");
    let (t, body) = &out[0];
    assert_eq!(*t, 102);
    let u = |i: usize| u32::from_le_bytes(body[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!(
        (u(0), u(1), u(2), u(3), u(4), u(5), u(7)),
        (3, 99, 1010, 1020, 2, 0, u32::MAX)
    );
    // One more frame, then the timer sends the partial window.
    feed(&mut s, l.display, &data(1030), now);
    s.handle_timeout(now + Duration::from_millis(600));
    let out = sent(&mut s, l.display, ChannelType::DISPLAY);
    assert_eq!(out.len(), 1);
    assert_eq!(u32::from_le_bytes(out[0].1[16..20].try_into().unwrap()), 1);
    // A corrupt frame is counted as a drop and reported as a render error.
    feed(
        &mut s,
        l.display,
        &ServerMessage::Display(pd::ServerMessage::StreamData(pd::StreamData {
            header: StreamDataHeader {
                id: 3,
                multi_media_time: 1040,
            },
            data: b"not a jpeg",
        })),
        now,
    );
    assert!(events(&mut s).iter().any(|e| matches!(
        e,
        Event::RenderError {
            msg: "stream_data",
            ..
        }
    )));
    feed(
        &mut s,
        l.display,
        &ServerMessage::Display(pd::ServerMessage::StreamDestroy(3)),
        now,
    );
    let out = sent(&mut s, l.display, ChannelType::DISPLAY);
    assert_eq!(out.len(), 1, "final report on destroy");
    assert_eq!(
        u32::from_le_bytes(out[0].1[20..24].try_into().unwrap()),
        1,
        "one drop"
    );
    assert!(
        events(&mut s)
            .iter()
            .any(|e| matches!(e, Event::StreamDestroyed { stream_id: 3, .. }))
    );
}

#[test]
fn agent_data_waits_for_tokens() {
    let (mut s, l, now) = setup();
    // MAIN_INIT granted 10 tokens; send 12 chunks worth.
    let data = vec![7u8; 2048 * 11 + 5];
    s.send_agent_data(&data).unwrap();
    let out = sent(&mut s, l.main, ChannelType::MAIN);
    assert_eq!(out.len(), 10);
    assert!(
        out.iter()
            .all(|(t, b)| *t == pm::ClientMessage::AGENT_DATA && b.len() == 2048)
    );
    feed(
        &mut s,
        l.main,
        &ServerMessage::Main(pm::ServerMessage::AgentToken { num_tokens: 5 }),
        now,
    );
    let out = sent(&mut s, l.main, ChannelType::MAIN);
    assert_eq!(
        out.iter().map(|(_, b)| b.len()).collect::<Vec<_>>(),
        [2048, 5]
    );
    feed(
        &mut s,
        l.main,
        &ServerMessage::Main(pm::ServerMessage::AgentData(b"abc")),
        now,
    );
    assert!(
        events(&mut s)
            .iter()
            .any(|e| matches!(e, Event::AgentData(d) if d == b"abc"))
    );
}

// ----------------------------------------------------------------------------------------
// Malformed input: error events, never panics
// ----------------------------------------------------------------------------------------

#[test]
fn malformed_message_is_an_error_event() {
    let (mut s, l, now) = setup();
    // MAIN_INIT with a 3-byte body.
    s.receive(
        l.main,
        &raw_message(MINI, 0, pm::ServerMessage::INIT, &[1, 2, 3]),
        now,
    )
    .unwrap();
    let ev = events(&mut s);
    assert!(
        matches!(&ev[0], Event::ChannelError { channel_type: ChannelType::MAIN, error: ChannelError::Message(m), .. } if m.msg_type == 103),
        "{ev:?}"
    );
    assert!(matches!(ev[1], Event::ChannelClosed { .. }));
    assert!(matches!(ev[2], Event::Disconnected));
    assert!(s.is_closed(l.main));
    // Further bytes on a closed connection are ignored.
    s.receive(l.main, &[0xff; 64], now).unwrap();
    assert!(events(&mut s).is_empty());
}

#[test]
fn unknown_message_type_and_oversized_message() {
    let (mut s, l, now) = setup();
    s.receive(l.cursor, &raw_message(MINI, 0, 4242, &[]), now)
        .unwrap();
    let ev = events(&mut s);
    assert!(
        matches!(
            &ev[0],
            Event::ChannelError {
                channel_type: ChannelType::CURSOR,
                error: ChannelError::Message(_),
                ..
            }
        ),
        "{ev:?}"
    );
    // A header announcing 2 GiB: refused before anything is buffered.
    let mut huge = 302u16.to_le_bytes().to_vec();
    huge.extend_from_slice(&0x8000_0000u32.to_le_bytes());
    s.receive(l.display, &huge, now).unwrap();
    let ev = events(&mut s);
    assert!(
        matches!(
            &ev[0],
            Event::ChannelError {
                channel_type: ChannelType::DISPLAY,
                error: ChannelError::Frame(_),
                ..
            }
        ),
        "{ev:?}"
    );
    // Inputs still work.
    s.key_down(0x1e, false).unwrap();
}

#[test]
fn bad_link_replies_are_link_errors() {
    let now = Instant::now();
    for bad in [
        b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
        {
            let mut r = link_reply_bytes(true);
            r[4] = 1; // major version 1
            r
        },
        {
            let mut r = link_reply_bytes(true);
            let n = r.len();
            r[n - 4] = 7; // PERMISSION_DENIED as the result
            r
        },
    ] {
        let mut s = Session::new(SessionConfig::default()).unwrap();
        s.receive(ConnId(0), &bad, now).unwrap();
        let ev = events(&mut s);
        assert!(
            ev.iter().any(|e| matches!(
                e,
                Event::ChannelError {
                    error: ChannelError::Link(_),
                    ..
                }
            )),
            "{ev:?}"
        );
        assert!(ev.iter().any(|e| matches!(e, Event::Disconnected)));
    }
    assert!(
        Session::new(SessionConfig {
            password: "x".repeat(61),
            ..Default::default()
        })
        .is_err()
    );
    let _ = main_init();
}

#[test]
fn fuzz_corpus_replays() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/corpus/client_session"
    );
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("corpus directory") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        spice_client_core::testing::fuzz_session(&data);
        n += 1;
    }
    assert!(n > 0, "empty corpus");
}

/// Seeds for fuzz/corpus/client_session in the chunk format of `fuzz_session`.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    fn chunks(sel: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in bytes.chunks(255) {
            out.push(sel);
            out.push(c.len() as u8);
            out.extend_from_slice(c);
        }
        out
    }
    let m = |msg: &ServerMessage<'_>| server_message(MINI, 0, msg);
    let mut display = m(&surface_create(0, 64, 48));
    display.extend(m(&fill(0, rect(1, 1, 30, 20), 0x123456)));
    display.extend(m(&ServerMessage::Display(pd::ServerMessage::Mark)));
    display.extend(m(&ServerMessage::Display(
        pd::ServerMessage::InvalAllPalettes,
    )));
    let mut stream = m(&surface_create(0, 32, 32));
    stream.extend(m(&ServerMessage::Display(pd::ServerMessage::StreamCreate(
        pd::StreamCreate {
            surface_id: 0,
            id: 1,
            flags: StreamFlags::empty(),
            codec_type: VideoCodecType::MJPEG,
            stamp: 0,
            stream_width: 8,
            stream_height: 8,
            src_width: 8,
            src_height: 8,
            dest: rect(0, 0, 8, 8),
            clip: Clip::None,
        },
    ))));
    let frame = mjpeg_frame(8, 8, [10, 20, 30, 0]);
    stream.extend(m(&ServerMessage::Display(pd::ServerMessage::StreamData(
        pd::StreamData {
            header: StreamDataHeader {
                id: 1,
                multi_media_time: 5,
            },
            data: &frame,
        },
    ))));
    let mut main = m(&ServerMessage::Base(base::ServerMessage::SetAck(SetAck {
        generation: 1,
        window: 2,
    })));
    main.extend(m(&ServerMessage::Base(base::ServerMessage::Ping(
        base::Ping {
            id: 1,
            timestamp: 2,
            data: &[],
        },
    ))));
    main.extend(m(&ServerMessage::Main(
        pm::ServerMessage::AgentConnectedTokens { num_tokens: 3 },
    )));
    main.extend(m(&ServerMessage::Main(pm::ServerMessage::AgentData(
        b"\x01\0\0\0",
    ))));
    let cursor_data = [0u8; 4 * 4 * 4];
    let cursor = m(&ServerMessage::Cursor(pc::ServerMessage::Set(
        pc::CursorSet {
            position: Point16 { x: 1, y: 1 },
            visible: 1,
            cursor: spice_proto::types::Cursor {
                flags: CursorFlags::CACHE_ME,
                header: Some(CursorHeader {
                    unique: 1,
                    cursor_type: CursorType::ALPHA,
                    width: 4,
                    height: 4,
                    hot_spot_x: 0,
                    hot_spot_y: 0,
                }),
                data: &cursor_data,
            },
        },
    )));
    let mut inputs = m(&ServerMessage::Inputs(
        pi::InputsServerMessage::MouseMotionAck,
    ));
    inputs.extend(m(&ServerMessage::Inputs(
        pi::InputsServerMessage::KeyModifiers {
            modifiers: pi::KeyboardModifiers::CAPS_LOCK,
        },
    )));
    let mut mixed = chunks(1 | 8, &display);
    mixed.extend(chunks(2 | 4, &cursor));
    mixed.extend(chunks(3 | 8 | 16, &inputs));
    mixed.extend(chunks(4, &main));
    vec![
        ("seed-display", chunks(1, &display)),
        ("seed-stream", chunks(1 | 4, &stream)),
        ("seed-main", chunks(0, &main)),
        ("seed-cursor", chunks(2, &cursor)),
        ("seed-inputs", chunks(3 | 8, &inputs)),
        ("seed-mixed", mixed),
        (
            "seed-malformed",
            chunks(1, &raw_message(MINI, 0, 302, &[1, 2, 3])),
        ),
    ]
}

/// The committed seeds are what `seeds()` builds (SPICE_WRITE_CORPUS=1 rewrites them).
#[test]
fn seed_corpus_is_current() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fuzz/corpus/client_session"
    );
    for (name, bytes) in seeds() {
        let path = format!("{dir}/{name}");
        if std::env::var_os("SPICE_WRITE_CORPUS").is_some() {
            std::fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(
            std::fs::read(&path).expect("seed file"),
            bytes,
            "{name} is stale"
        );
        spice_client_core::testing::fuzz_session(&bytes);
    }
}

/// A server without MINI_HEADER: 18-byte headers both ways, serials counted, and a
/// sub-message list (INVAL_LIST before a draw, as spice-server's free list) handled first.
#[test]
fn full_header_and_sub_list() {
    use spice_proto::types::{ResourceId, ResourceType};
    let now = Instant::now();
    let mut s = Session::new(SessionConfig::default()).unwrap();
    let main = ConnId(0);
    s.receive(main, &link_reply_bytes(false), now).unwrap();
    let mut sink = Vec::new();
    s.transmit(main, &mut sink);
    s.receive(
        main,
        &server_message(HeaderKind::Full, 1, &main_init()),
        now,
    )
    .unwrap();
    let mut out = Vec::new();
    s.transmit(main, &mut out);
    // serial 1, type 104 (ATTACH_CHANNELS), size 0, sub_list 0
    assert_eq!(
        out,
        [1, 0, 0, 0, 0, 0, 0, 0, 104, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    let list = ServerMessage::Main(pm::ServerMessage::ChannelsList(vec![pm::ChannelId {
        channel_type: ChannelType::DISPLAY,
        id: 0,
    }]));
    s.receive(main, &server_message(HeaderKind::Full, 2, &list), now)
        .unwrap();
    let display = events(&mut s)
        .into_iter()
        .find_map(|e| match e {
            Event::OpenChannel {
                conn,
                channel_type: ChannelType::DISPLAY,
                ..
            } => Some(conn),
            _ => None,
        })
        .unwrap();
    s.receive(display, &link_reply_bytes(false), now).unwrap();
    s.receive(
        display,
        &server_message(HeaderKind::Full, 1, &surface_create(0, 8, 8)),
        now,
    )
    .unwrap();
    // DRAW_FILL with a sub-list holding INVAL_LIST.
    let inval = ServerMessage::Display(pd::ServerMessage::InvalList(vec![ResourceId {
        resource_type: ResourceType::PIXMAP,
        id: 5,
    }]));
    let fill_msg = fill(0, rect(0, 0, 4, 4), 0xff);
    let sub_body = inval.body_to_vec().unwrap();
    let subs = base::SubMessageList {
        messages: vec![base::SubMessage {
            msg_type: inval.msg_type(),
            body: &sub_body,
        }],
    };
    let mut bytes = Vec::new();
    base::write_full_message_with_sub_list(
        &mut bytes,
        2,
        fill_msg.msg_type(),
        |w| fill_msg.encode_body(w),
        &subs,
    )
    .unwrap();
    s.receive(display, &bytes, now).unwrap();
    let ev = events(&mut s);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::RegionChanged { rect: r, .. } if *r == rect(0, 0, 4, 4))),
        "{ev:?}"
    );
    assert!(
        !ev.iter()
            .any(|e| matches!(e, Event::ChannelError { .. } | Event::RenderError { .. })),
        "{ev:?}"
    );
    assert_eq!(
        s.surface(0, 0).unwrap().pixel(1, 1).unwrap() & 0xffffff,
        0xff
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Arbitrary bytes on any linked channel, in arbitrary pieces: events, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(
        (0usize..4, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)), 0..8)) {
        let (mut s, l, now) = setup();
        let conns = [l.main, l.display, l.cursor, l.inputs];
        for (c, bytes) in chunks {
            s.receive(conns[c], &bytes, now).unwrap();
            events(&mut s);
        }
    }
}

/// Video sync: late frames are drawn at once, early ones when their time comes (in
/// arrival order), a destroyed stream's waiting frames are dropped, and with
/// `video_sync: false` every frame is drawn on arrival.
#[test]
fn stream_frames_wait_for_their_presentation_time() {
    for sync in [true, false] {
        let now = Instant::now();
        let (mut s, l) = linked_session(
            SessionConfig {
                video_sync: sync,
                ..SessionConfig::default()
            },
            now,
        );
        feed(&mut s, l.display, &surface_create(0, 64, 32), now);
        let create = mjpeg_stream_create(1, 16, rect(0, 0, 16, 16));
        feed(&mut s, l.display, &create, now);
        events(&mut s);
        let frame = mjpeg_frame(16, 16, [0, 255, 0, 0]);
        let data = |mm| mjpeg_stream_data(1, mm, &frame);
        let shown = |s: &mut Session| -> Vec<u32> {
            events(s)
                .iter()
                .filter_map(|e| match e {
                    Event::StreamFrame { mm_time, .. } => Some(*mm_time),
                    _ => None,
                })
                .collect()
        };
        // MAIN_INIT: 1000 at `now`. 990 is late, 1400 and 1440 are early.
        for mm in [990, 1400, 1440] {
            feed(&mut s, l.display, &data(mm), now);
        }
        if !sync {
            assert_eq!(shown(&mut s), vec![990, 1400, 1440]);
            assert_eq!(s.display_channel(0).unwrap().queued_frames(), 0);
            continue;
        }
        assert_eq!(shown(&mut s), vec![990]);
        assert_eq!(s.next_deadline(), Some(now + Duration::from_millis(400)));
        s.handle_timeout(now + Duration::from_millis(420));
        assert_eq!(shown(&mut s), vec![1400]);
        assert_eq!(s.next_deadline(), Some(now + Duration::from_millis(440)));
        // The stream ends before 1440 is due: that frame is never shown.
        feed(
            &mut s,
            l.display,
            &ServerMessage::Display(pd::ServerMessage::StreamDestroy(1)),
            now + Duration::from_millis(430),
        );
        assert_eq!(s.display_channel(0).unwrap().queued_frames(), 0);
        s.handle_timeout(now + Duration::from_secs(1));
        assert!(shown(&mut s).is_empty());
        assert_eq!(s.next_deadline(), None);
    }
}

/// However far ahead a server stamps its frames, at most `MAX_QUEUED_FRAMES` wait; older
/// ones are drawn at once.
#[test]
fn waiting_stream_frames_are_bounded() {
    use spice_client_core::display::MAX_QUEUED_FRAMES;
    let (mut s, l, now) = setup();
    feed(&mut s, l.display, &surface_create(0, 64, 32), now);
    let create = mjpeg_stream_create(2, 8, rect(0, 0, 8, 8));
    feed(&mut s, l.display, &create, now);
    events(&mut s);
    let frame = mjpeg_frame(8, 8, [9, 9, 9, 0]);
    let extra = 8;
    for i in 0..(MAX_QUEUED_FRAMES + extra) as u32 {
        let data = mjpeg_stream_data(2, 1_000_000 + i, &frame);
        feed(&mut s, l.display, &data, now);
    }
    let drawn = events(&mut s)
        .iter()
        .filter(|e| matches!(e, Event::StreamFrame { .. }))
        .count();
    assert_eq!(drawn, extra);
    assert_eq!(
        s.display_channel(0).unwrap().queued_frames(),
        MAX_QUEUED_FRAMES
    );
}

/// A MULTI_MEDIA_TIME that moves the clock reschedules the frames already waiting (as
/// spice-gtk does): a frame stamped 1100 waits 100 ms on MAIN_INIT's clock (1000 at `now`);
/// when the clock jumps to 1080 at `now + 10 ms` it is due 20 ms later, and when it jumps
/// past the stamp the frame is drawn at the next timeout.
#[test]
fn waiting_stream_frames_follow_a_moved_clock() {
    let (mut s, l, now) = setup();
    feed(&mut s, l.display, &surface_create(0, 64, 32), now);
    let create = mjpeg_stream_create(3, 16, rect(8, 8, 24, 24));
    feed(&mut s, l.display, &create, now);
    events(&mut s);
    let frame = mjpeg_frame(16, 16, [0, 0, 255, 0]);
    let data = |mm| mjpeg_stream_data(3, mm, &frame);
    let clock = |time| ServerMessage::Main(pm::ServerMessage::MultiMediaTime { time });

    feed(&mut s, l.display, &data(1100), now);
    assert_eq!(s.next_deadline(), Some(now + Duration::from_millis(100)));
    let t = now + Duration::from_millis(10);
    feed(&mut s, l.main, &clock(1080), t);
    assert_eq!(s.next_deadline(), Some(t + Duration::from_millis(20)));
    s.handle_timeout(t + Duration::from_millis(19));
    assert!(
        !events(&mut s)
            .iter()
            .any(|e| matches!(e, Event::StreamFrame { .. }))
    );
    s.handle_timeout(t + Duration::from_millis(20));
    assert!(
        events(&mut s)
            .iter()
            .any(|e| matches!(e, Event::StreamFrame { mm_time: 1100, .. }))
    );

    // A frame well ahead, then a clock that jumps past it: due at once.
    feed(&mut s, l.display, &data(1500), t);
    assert_eq!(s.display_channel(0).unwrap().queued_frames(), 1);
    feed(&mut s, l.main, &clock(1600), t);
    assert_eq!(s.next_deadline(), Some(t));
    s.handle_timeout(t);
    assert!(
        events(&mut s)
            .iter()
            .any(|e| matches!(e, Event::StreamFrame { mm_time: 1500, .. }))
    );
    assert_eq!(s.display_channel(0).unwrap().queued_frames(), 0);
}
