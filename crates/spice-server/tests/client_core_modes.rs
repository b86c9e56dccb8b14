//! Our client core against our server's frozen demo desktop in every image-compression mode
//! (LZ4 included: the client core advertises `LZ4_COMPRESSION`): the client's primary surface
//! ends equal to the server's framebuffer and to the demo's reference picture. A recording
//! proxy between them shows the display channel carried what the mode asks for (LZ4 images
//! in `lz4` mode).

use std::time::{Duration, Instant};

use spice_client_core::blocking::Client;
use spice_client_core::{SessionConfig, SpiceUri};
use spice_codecs::classify::ImageCompression;
use spice_proto::ChannelType;
use spice_proto::Direction;
use spice_proto::types::ImageType;
use spice_server::display::demo::DemoRunner;
use spice_testpeers::proxy::RecordingProxy;
use spice_testpeers::recording::Direction as RecDir;

/// True when the frozen demo is drawn and the client's primary equals the server's
/// framebuffer and the demo's reference picture.
fn client_matches(client: &Client, demo: &DemoRunner) -> bool {
    let w = demo.worker().lock().unwrap();
    let d = w.device();
    if !(d.is_frozen() && d.is_idle()) || w.pending_drawables() != 0 {
        return false;
    }
    let (Some(server), Some(ours)) = (w.surface(0), client.session_ref().surface(0, 0)) else {
        return false;
    };
    let rgb = |px: &[u32]| px.iter().map(|p| p & 0x00ff_ffff).collect::<Vec<u32>>();
    let fb = rgb(server.pixels());
    (ours.width(), ours.height()) == (server.width(), server.height())
        && rgb(ours.pixels()) == fb
        && d.reference_frame().is_some_and(|r| rgb(&r) == fb)
}

/// Image types of every DRAW_COPY the server sent on the display channels of `rec`.
fn copy_image_types(rec: &spice_testpeers::recording::Recording) -> Vec<ImageType> {
    use spice_proto::ChannelMessage as _;
    use spice_proto::display::ServerMessage;
    use spice_testpeers::analyse::ConnectionDecoder;
    let mut types = Vec::new();
    for c in &rec.connections {
        let mut dec = ConnectionDecoder::new();
        let mut msgs = dec
            .push(Direction::ClientToServer, c.bytes(RecDir::ClientToServer))
            .unwrap();
        msgs.extend(
            dec.push(Direction::ServerToClient, c.bytes(RecDir::ServerToClient))
                .unwrap(),
        );
        if dec.link_mess().map(|m| m.channel_type) != Some(ChannelType::DISPLAY) {
            continue;
        }
        for m in msgs {
            if m.direction != Direction::ServerToClient || m.name != "draw_copy" {
                continue;
            }
            let msg =
                ServerMessage::decode_body(ChannelType::DISPLAY, m.msg_type, &m.body).unwrap();
            if let ServerMessage::DrawCopy(d) = msg {
                if let Some(img) = d.src_bitmap.as_ref() {
                    types.push(img.body.image_type());
                }
            }
        }
    }
    types
}

#[test]
fn client_core_shows_the_demo_in_every_compression_mode() {
    for mode in [
        ImageCompression::Lz4,
        ImageCompression::AutoGlz,
        ImageCompression::AutoLz,
        ImageCompression::Quic,
        ImageCompression::Glz,
        ImageCompression::Lz,
        ImageCompression::Off,
    ] {
        let (server, addr, demo) = spice_server::testing::demo_server(mode);
        assert!(
            demo.wait_settled(Duration::from_secs(30)),
            "{mode:?}: demo settled"
        );
        let proxy = RecordingProxy::start(addr).unwrap();
        let uri: SpiceUri = format!("spice://127.0.0.1:{}", proxy.port())
            .parse()
            .unwrap();
        let mut client = Client::connect(&uri, SessionConfig::default()).unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        while !client_matches(&client, &demo) {
            assert!(
                Instant::now() < end,
                "{mode:?}: the client never matched the server"
            );
            client.poll(Duration::from_millis(20)).unwrap();
        }
        drop(client);
        assert!(proxy.wait_all_closed(Duration::from_secs(10)));
        let types = copy_image_types(&proxy.stop());
        server.shutdown();
        assert!(!types.is_empty(), "{mode:?}: no DRAW_COPY image seen");
        let has = |t: ImageType| types.contains(&t);
        match mode {
            ImageCompression::Lz4 => assert!(has(ImageType::LZ4), "{mode:?}: {types:?}"),
            ImageCompression::Glz | ImageCompression::AutoGlz => {
                assert!(has(ImageType::GLZ_RGB), "{mode:?}: {types:?}")
            }
            ImageCompression::Lz => assert!(has(ImageType::LZ_RGB), "{mode:?}: {types:?}"),
            ImageCompression::Quic => assert!(has(ImageType::QUIC), "{mode:?}: {types:?}"),
            ImageCompression::Off => assert!(has(ImageType::BITMAP), "{mode:?}: {types:?}"),
            _ => {}
        }
    }
}
