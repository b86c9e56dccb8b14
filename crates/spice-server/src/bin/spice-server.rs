//! `spice-server`: the reference SPICE server.
//!
//! ```text
//! spice-server --listen 127.0.0.1:5900 --demo
//! ```
//!
//! Options are named as in QEMU's `-spice`. Logs go to stderr through tracing
//! (`RUST_LOG=debug` for more).
//!
//! `--demo` runs the demo desktop (crates/spice-server/src/demo) as the QXL device of a
//! display worker (crates/spice-server/src/display): `attach_display` registers its display
//! channel and feeds the cursor channel from its cursor ring; `--dump-frame` writes the
//! worker's framebuffer once `--demo-frames` froze the demo and everything is drawn.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use spice_server::config::{
    ServerConfig, parse_image_compression, parse_streaming_video, parse_wan_compression,
};
use spice_server::cursor::CursorFeed;
use spice_server::demo::DemoConfig;
use spice_server::display::demo::DemoRunner;
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
    /// Also play a 440 Hz tone on the playback channel (with --demo).
    #[arg(long, requires = "demo")]
    demo_tone: bool,
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

/// The display channel and the demo desktop driving it (`--demo`); without `--demo` there
/// is no QXL device and no display channel, only the (empty) cursor channel.
fn attach_display(
    builder: ServerBuilder,
    args: &Args,
) -> anyhow::Result<(ServerBuilder, Option<DemoRunner>)> {
    if !args.demo {
        return Ok((builder.cursor(CursorFeed::new()), None));
    }
    let (builder, demo) = DemoRunner::attach(
        builder,
        DemoConfig {
            freeze_after: args.demo_frames,
            ..DemoConfig::default()
        },
    )
    .context("starting the demo desktop")?;
    Ok((builder, Some(demo)))
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = config(&args)?;
    let (mut builder, demo) = attach_display(ServerBuilder::new(config), &args)?;
    if args.demo_tone {
        builder = builder.playback_device(spice_server::demo_audio::DemoTone::new(440.0));
    }
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
    if let (Some(demo), Some(path)) = (&demo, &args.dump_frame) {
        demo.dump_frame(path, Duration::from_secs(120))
            .with_context(|| format!("writing --dump-frame {}", path.display()))?;
        tracing::info!("frame written to {}", path.display());
        eprintln!("spice-server: frame written to {}", path.display());
    }
    server.wait();
    drop(demo);
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
