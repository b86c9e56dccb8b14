//! spice-html5 (Debian's `spice-html5`, a static web app) in headless Chromium, driven by
//! playwright-core from npm: loads `spice_auto.html`, which speaks SPICE over WebSocket straight
//! to the server's plain port, and reads the pixels of the surface canvas.
//!
//! playwright-core is installed with npm into `~/.cache/spice-rs/npm` the first time (the test
//! command's install step does it too); a missing `node`/`npm`/`chromium` panics, never skips.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::PeerError;
use crate::net::{free_port, wait_for_port};
use crate::ppm::Ppm;
use crate::process::{ProgramOutput, require_program, run_with_timeout};

/// Where Debian's spice-html5 lives.
pub const SPICE_HTML5_DIR: &str = "/usr/share/spice-html5";

/// The driver script.
pub const SCRIPT: &str = include_str!("../scripts/html5_client.mjs");

/// The npm prefix holding playwright-core.
pub fn npm_prefix() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/spice-rs/npm")
}

/// Installs playwright-core under [`npm_prefix`] unless it is there; returns its node_modules.
/// Panics when npm is missing or the install fails.
pub fn ensure_playwright() -> PathBuf {
    let prefix = npm_prefix();
    let modules = prefix.join("node_modules");
    if modules.join("playwright-core/package.json").exists() {
        return modules;
    }
    require_program("npm");
    std::fs::create_dir_all(&prefix).expect("creating the npm prefix");
    let out = run_with_timeout(
        "npm",
        &[
            "install".as_ref(),
            "--no-audit".as_ref(),
            "--no-fund".as_ref(),
            "--prefix".as_ref(),
            prefix.as_os_str(),
            "playwright-core@1".as_ref(),
        ],
        &[],
        Duration::from_secs(300),
    )
    .expect("npm install playwright-core");
    assert!(
        out.success() && modules.join("playwright-core/package.json").exists(),
        "npm install playwright-core failed: {out:?}"
    );
    modules
}

/// A static HTTP server for [`SPICE_HTML5_DIR`] on 127.0.0.1 (python3's http.server), killed on
/// drop.
#[derive(Debug)]
pub struct Html5Server {
    child: Child,
    port: u16,
}

impl Html5Server {
    /// Starts it on a free port and waits until it accepts connections.
    pub fn start() -> Result<Self, PeerError> {
        assert!(
            Path::new(SPICE_HTML5_DIR).join("spice_auto.html").exists(),
            "spice-html5 is not installed (Debian package spice-html5); {}. Real-peer tests \
             never skip.",
            crate::process::INSTALL_HINT
        );
        let python = require_program("python3");
        let port = free_port()?;
        let child = Command::new(python)
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(SPICE_HTML5_DIR)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| PeerError::io("starting python3 -m http.server", e))?;
        let server = Html5Server { child, port };
        wait_for_port(([127, 0, 0, 1], port).into(), Duration::from_secs(20))?;
        Ok(server)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `spice_auto.html` address that connects to a SPICE server's plain port.
    pub fn page_url(&self, spice_port: u16, password: Option<&str>) -> String {
        let mut url = format!(
            "http://127.0.0.1:{}/spice_auto.html?host=127.0.0.1&port={spice_port}",
            self.port
        );
        if let Some(pw) = password {
            url.push_str("&password=");
            for b in pw.bytes() {
                if b.is_ascii_alphanumeric() {
                    url.push(b as char);
                } else {
                    url.push_str(&format!("%{b:02X}"));
                }
            }
        }
        url
    }
}

impl Drop for Html5Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What [`html5_screenshot`] got.
#[derive(Debug)]
pub struct Html5Shot {
    /// The surface canvas's pixels, when it appeared and settled.
    pub image: Option<Ppm>,
    /// The driver's output (JSON lines: the page's console messages, then `done`).
    pub output: ProgramOutput,
}

/// Opens spice-html5 against `127.0.0.1:spice_port` in headless Chromium and reads the canvas of
/// surface 0 once it has not changed for `settle`. Panics when node, chromium or spice-html5 is
/// missing.
pub fn html5_screenshot(
    spice_port: u16,
    password: Option<&str>,
    settle: Duration,
    limit: Duration,
) -> Result<Html5Shot, PeerError> {
    require_program("node");
    let chromium = require_program("chromium");
    let modules = ensure_playwright();
    let http = Html5Server::start()?;
    let dir = tempfile::tempdir().map_err(|e| PeerError::io("tempdir", e))?;
    let script = dir.path().join("html5_client.mjs");
    std::fs::write(&script, SCRIPT).map_err(|e| PeerError::io("writing the script", e))?;
    let out = dir.path().join("shot.ppm");
    let arg = serde_json::json!({
        "url": http.page_url(spice_port, password),
        "chromium": chromium.display().to_string(),
        "profile": dir.path().join("profile").display().to_string(),
        "out_ppm": out.display().to_string(),
        "settle_ms": settle.as_millis() as u64,
        "timeout_ms": limit.as_millis() as u64,
    })
    .to_string();
    let node_path = modules.display().to_string();
    let output = run_with_timeout(
        "node",
        &[script.as_os_str(), arg.as_ref()],
        &[("NODE_PATH", node_path.as_str())],
        limit + Duration::from_secs(30),
    )?;
    let image = if output.success() {
        Some(
            Ppm::read(&out)
                .map_err(|e| PeerError::io("reading the canvas PPM", std::io::Error::other(e)))?,
        )
    } else {
        None
    };
    Ok(Html5Shot { image, output })
}
