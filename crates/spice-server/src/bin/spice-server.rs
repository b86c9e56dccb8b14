//! `spice-server`: the reference SPICE server.
//!
//! ```text
//! spice-server --listen 127.0.0.1:5900 --demo
//! ```
//!
//! Options are named as in QEMU's `-spice`. Logs go to stderr through tracing
//! (`RUST_LOG=debug` for more).
//!
//! Integration points (the lead wires the sibling branches here):
//! - `attach_display`: the display channel and its worker (crates/spice-server/src/display)
//!   register with `ServerBuilder::add_channel`; `--dump-frame` writes that worker's
//!   framebuffer once `--demo-frames` froze the demo.
//! - `attach_demo`: the demo desktop (crates/spice-server/src/demo) drives the QXL device and
//!   the cursor feed. Until it is merged, `--demo` animates the cursor channel only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use spice_proto::types::{CursorType, Point16};
use spice_server::config::{
    ServerConfig, parse_image_compression, parse_streaming_video, parse_wan_compression,
};
use spice_server::cursor::{CursorCommand, CursorFeed, CursorShape};
use spice_server::server::{ServerBuilder, ServerError};

/// The reference SPICE server.
#[derive(Debug, Parser)]
#[command(name = "spice-server", version, about)]
struct Args {
    /// Plain (and WebSocket) listen address.
    #[arg(long, default_value = "127.0.0.1:5900")]
    listen: SocketAddr,
    /// Serve the built-in demo desktop.
    #[arg(long)]
    demo: bool,
    /// Require this password (ticket).
    #[arg(long, conflicts_with = "disable_ticketing")]
    password: Option<String>,
    /// Let clients in without a password (the default when no password is given).
    #[arg(long)]
    disable_ticketing: bool,
    /// off, quic, lz, glz, auto_glz, auto_lz, lz4.
    #[arg(long, default_value = "auto_glz")]
    image_compression: String,
    /// auto, never, always.
    #[arg(long, default_value = "auto")]
    jpeg_wan_compression: String,
    /// auto, never, always.
    #[arg(long, default_value = "auto")]
    zlib_glz_wan_compression: String,
    /// off, all, filter.
    #[arg(long, default_value = "filter")]
    streaming_video: String,
    /// on, off.
    #[arg(long, default_value = "on")]
    agent_mouse: String,
    /// on, off.
    #[arg(long, default_value = "on")]
    playback_compression: String,
    /// TLS port (on the --listen address), needs --x509-dir.
    #[arg(long, requires = "x509_dir")]
    tls_port: Option<u16>,
    /// Directory with ca-cert.pem, server-cert.pem, server-key.pem.
    #[arg(long)]
    x509_dir: Option<PathBuf>,
    /// Freeze the demo after N frames.
    #[arg(long, requires = "demo")]
    demo_frames: Option<u64>,
    /// Write the server's framebuffer as PPM once the demo is frozen.
    #[arg(long, requires = "demo_frames")]
    dump_frame: Option<PathBuf>,
}

fn on_off(option: &'static str, v: &str) -> anyhow::Result<bool> {
    match v {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => bail!("invalid value {v:?} for --{option} (expected on or off)"),
    }
}

fn config(args: &Args) -> anyhow::Result<ServerConfig> {
    let mut b = ServerConfig::builder()
        .listen(args.listen)
        .image_compression(parse_image_compression(&args.image_compression)?)
        .jpeg_wan_compression(parse_wan_compression(
            "jpeg-wan-compression",
            &args.jpeg_wan_compression,
        )?)
        .zlib_glz_wan_compression(parse_wan_compression(
            "zlib-glz-wan-compression",
            &args.zlib_glz_wan_compression,
        )?)
        .streaming_video(parse_streaming_video(&args.streaming_video)?)
        .agent_mouse(on_off("agent-mouse", &args.agent_mouse)?)
        .playback_compression(on_off("playback-compression", &args.playback_compression)?);
    b = match &args.password {
        Some(p) => b.password(p.as_bytes(), None),
        None => b.disable_ticketing(),
    };
    if let Some(port) = args.tls_port {
        b = b.tls_listen(SocketAddr::new(args.listen.ip(), port));
    }
    if let Some(dir) = &args.x509_dir {
        b = b.x509_dir(dir);
    }
    Ok(b.build()?)
}

/// Integration point for the display channel (server-display branch).
fn attach_display(builder: ServerBuilder, args: &Args) -> anyhow::Result<ServerBuilder> {
    if args.dump_frame.is_some() {
        bail!("--dump-frame needs the display channel, which this build does not include yet");
    }
    Ok(builder)
}

/// A 16x16 ARGB arrow.
fn arrow() -> Arc<CursorShape> {
    let mut data = Vec::with_capacity(16 * 16 * 4);
    for y in 0..16u32 {
        for x in 0..16u32 {
            let inside = x <= y && x + y / 2 < 12;
            let edge = inside && (x == 0 || x == y || x + y / 2 == 11);
            let px: u32 = match (inside, edge) {
                (true, true) => 0xff00_0000,
                (true, false) => 0xffff_ffff,
                _ => 0,
            };
            data.extend_from_slice(&px.to_le_bytes());
        }
    }
    Arc::new(CursorShape {
        unique: 0x5350_4943_4555_0001,
        cursor_type: CursorType::ALPHA,
        width: 16,
        height: 16,
        hot_spot_x: 0,
        hot_spot_y: 0,
        data,
    })
}

/// Integration point for the demo desktop (qxl-convert branch). Until it lands, the demo
/// moves the cursor along a circle at 30 Hz, frozen after `--demo-frames`.
fn attach_demo(builder: ServerBuilder, args: &Args) -> anyhow::Result<ServerBuilder> {
    let feed = CursorFeed::new();
    if !args.demo {
        return Ok(builder.cursor(feed));
    }
    let shape = arrow();
    feed.push(CursorCommand::Set {
        position: Point16 { x: 320, y: 200 },
        visible: true,
        shape,
    });
    let frames = args.demo_frames;
    let f = feed.clone();
    std::thread::Builder::new()
        .name("demo-cursor".into())
        .spawn(move || {
            let mut n: u64 = 0;
            loop {
                if frames.is_some_and(|max| n >= max) {
                    tracing::info!(frames = n, "demo frozen");
                    return;
                }
                let t = n as f64 / 30.0;
                let x = 320.0 + 150.0 * t.cos();
                let y = 200.0 + 100.0 * t.sin();
                f.push(CursorCommand::Move(Point16 {
                    x: x as i16,
                    y: y as i16,
                }));
                n += 1;
                std::thread::sleep(Duration::from_millis(33));
            }
        })
        .context("starting the demo thread")?;
    Ok(builder.cursor(feed))
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = config(&args)?;
    let builder = ServerBuilder::new(config);
    let builder = attach_display(builder, &args)?;
    let builder = attach_demo(builder, &args)?;
    let server = builder.start().map_err(|e| match &e {
        ServerError::Bind { source, addr } if source.kind() == std::io::ErrorKind::AddrInUse => {
            anyhow::anyhow!("port busy: {addr} is already in use")
        }
        _ => anyhow::Error::new(e),
    })?;
    for a in server.local_addrs() {
        tracing::info!("SPICE (and WebSocket) on {a}");
        eprintln!("spice-server: listening on {a}");
    }
    for a in server.tls_local_addrs() {
        eprintln!("spice-server: TLS listening on {a}");
    }
    server.wait();
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spice-server: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
