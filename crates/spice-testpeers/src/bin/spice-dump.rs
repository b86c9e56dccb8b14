//! `spice-dump`: a SPICE protocol analyser. It listens on a local port, forwards every
//! connection to a SPICE server, and prints each message of every channel, both directions,
//! as spice-proto decodes it — checking on the way that each one re-encodes to the bytes on
//! the wire. Point any SPICE client (remote-viewer, spicy) at the listen address.
//!
//! `spice-dump --listen 127.0.0.1:5900 --target 127.0.0.1:5930`

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use clap::Parser;
use spice_proto::Direction;
use spice_testpeers::analyse::ConnectionDecoder;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Forward SPICE connections and print every decoded message"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5900")]
    listen: SocketAddr,
    /// The SPICE server to forward to.
    #[arg(long, default_value = "127.0.0.1:5930")]
    target: SocketAddr,
    /// Print only a per-connection summary when it closes, not every message.
    #[arg(long)]
    quiet: bool,
}

struct Conn {
    index: usize,
    decoder: ConnectionDecoder,
    failed: bool,
    count: usize,
}

fn pump(mut src: TcpStream, mut dst: TcpStream, dir: Direction, conn: &Mutex<Conn>, quiet: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if dst.write_all(&buf[..n]).is_err() {
            break;
        }
        let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
        if c.failed {
            continue;
        }
        match c.decoder.push(dir, &buf[..n]) {
            Ok(msgs) => {
                let channel = c
                    .decoder
                    .link_mess()
                    .map(|m| format!("{}:{}", m.channel_type, m.channel_id))
                    .unwrap_or_else(|| "?".into());
                c.count += msgs.len();
                if !quiet {
                    for m in msgs {
                        println!(
                            "#{} {channel} {} {:>3} {:<28} {} bytes",
                            c.index, m.direction, m.msg_type, m.name, m.wire_len
                        );
                    }
                }
            }
            Err(e) => {
                println!("#{} DECODE ERROR: {e} (still forwarding)", c.index);
                c.failed = true;
            }
        }
    }
    let _ = dst.shutdown(Shutdown::Write);
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let listener = match TcpListener::bind(args.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("spice-dump: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "spice-dump: listening on {}, forwarding to {}",
        args.listen, args.target
    );
    for (index, client) in listener.incoming().enumerate() {
        let Ok(client) = client else { continue };
        let server = match TcpStream::connect(args.target) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("spice-dump: cannot reach {}: {e}", args.target);
                continue;
            }
        };
        let conn = Arc::new(Mutex::new(Conn {
            index,
            decoder: ConnectionDecoder::new(),
            failed: false,
            count: 0,
        }));
        let (c2, s2) = match (client.try_clone(), server.try_clone()) {
            (Ok(c), Ok(s)) => (c, s),
            _ => continue,
        };
        let quiet = args.quiet;
        let up = Arc::clone(&conn);
        let down = Arc::clone(&conn);
        std::thread::spawn(move || pump(client, server, Direction::ClientToServer, &up, quiet));
        std::thread::spawn(move || {
            pump(s2, c2, Direction::ServerToClient, &down, quiet);
            let c = down.lock().unwrap_or_else(|p| p.into_inner());
            println!(
                "#{} closed: {} messages decoded{}",
                c.index,
                c.count,
                if c.failed {
                    ", with a decode error"
                } else {
                    ""
                }
            );
        });
    }
    std::process::ExitCode::SUCCESS
}
