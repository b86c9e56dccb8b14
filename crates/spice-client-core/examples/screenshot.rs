//! Connects to a SPICE server, waits until the primary surface is complete and quiet, and
//! writes it as a binary PPM (like spice-gtk's spicy-screenshot).
//!
//! ```text
//! cargo run --release -p spice-client-core --example screenshot -- 'spice://127.0.0.1:5930' out.ppm
//! cargo run --release -p spice-client-core --example screenshot -- 'spice://host?port=5900&password=secret' out.ppm
//! ```
//!
//! With `--ca-file CA.pem` every channel connects to the URI's `tls-port` over TLS
//! (`spice://host?tls-port=5901`).
//!
//! Exits 0 once the file is written; prints the reason and exits 1 otherwise.

use std::process::ExitCode;
use std::time::Duration;

use spice_client_core::SpiceUri;
use spice_client_core::blocking::{ScreenshotOptions, TlsConfig, screenshot_tls};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut tls = None;
    if let Some(i) = args.iter().position(|a| a == "--ca-file") {
        if i + 1 >= args.len() {
            eprintln!("screenshot: --ca-file needs a file");
            return ExitCode::from(2);
        }
        let file = args.remove(i + 1);
        args.remove(i);
        tls = Some(TlsConfig {
            ca_file: file.into(),
            server_name: None,
        });
    }
    let [uri, out] = args.as_slice() else {
        eprintln!(
            "usage: screenshot SPICE_URI OUT.ppm [--ca-file CA.pem]   (e.g. 'spice://127.0.0.1:5930')"
        );
        return ExitCode::from(2);
    };
    let uri = match SpiceUri::parse(uri) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("screenshot: bad URI: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = ScreenshotOptions {
        quiet: Duration::from_secs(1),
        settle_limit: Duration::from_secs(3),
        timeout: Duration::from_secs(30),
    };
    let ppm = match screenshot_tls(&uri, &opts, tls) {
        Ok((p, _)) => p,
        Err(e) => {
            eprintln!("screenshot: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::write(out, &ppm) {
        eprintln!("screenshot: writing {out}: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
