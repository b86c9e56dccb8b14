//! Connects to a SPICE server, waits until the primary surface is complete and quiet, and
//! writes it as a binary PPM (like spice-gtk's spicy-screenshot).
//!
//! ```text
//! cargo run --release -p spice-client-core --example screenshot -- 'spice://127.0.0.1:5930' out.ppm
//! cargo run --release -p spice-client-core --example screenshot -- 'spice://host?port=5900&password=secret' out.ppm
//! ```
//!
//! Exits 0 once the file is written; prints the reason and exits 1 otherwise.

use std::process::ExitCode;
use std::time::Duration;

use spice_client_core::SpiceUri;
use spice_client_core::blocking::{ScreenshotOptions, screenshot};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [uri, out] = args.as_slice() else {
        eprintln!("usage: screenshot SPICE_URI OUT.ppm   (e.g. 'spice://127.0.0.1:5930')");
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
        timeout: Duration::from_secs(30),
    };
    let ppm = match screenshot(&uri, &opts) {
        Ok(p) => p,
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
