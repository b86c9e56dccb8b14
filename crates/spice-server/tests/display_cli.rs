//! The `spice-server` binary with the frozen demo: `--demo --demo-frames N --dump-frame f.ppm`
//! writes the server's framebuffer, and spice-gtk's `spicy-screenshot` against the same
//! server shows exactly that picture, for every image compression spice-gtk accepts.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use spice_testpeers::ppm::{Ppm, compare};
use spice_testpeers::spicy::spicy_screenshot;

/// Kills the server when the test ends, also on a panic.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn spicy_screenshot_of_the_binary_equals_its_dump_frame() {
    let dir = std::env::temp_dir().join(format!("spice-display-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for mode in ["off", "quic", "lz", "glz", "auto_glz", "auto_lz", "lz4"] {
        let dump = dir.join(format!("{mode}-dump.ppm"));
        let child = Command::new(env!("CARGO_BIN_EXE_spice-server"))
            .args(["--listen", "127.0.0.1:0", "--demo", "--demo-frames", "3"])
            .args(["--image-compression", mode, "--dump-frame"])
            .arg(&dump)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = Kill(child);
        let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
        let mut addr: Option<SocketAddr> = None;
        loop {
            let line = lines.next().expect("binary exited").unwrap();
            if let Some(a) = line.strip_prefix("spice-server: listening on ") {
                addr = Some(a.parse().unwrap());
            }
            if line.starts_with("spice-server: frame written to") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        let addr = addr.expect("listen address printed before the frame");
        let shot = dir.join(format!("{mode}-shot.ppm"));
        let out = spicy_screenshot("127.0.0.1", addr.port(), None, &shot).unwrap();
        assert!(out.success(), "{mode}: spicy-screenshot failed: {out:?}");
        let want = Ppm::read(&dump).unwrap();
        let got = Ppm::read(&shot).unwrap();
        assert!(
            want.non_black_pixels() > 100_000,
            "{mode}: the demo is drawn"
        );
        if let Err(diff) = compare(&want, &got) {
            panic!("{mode}: spicy-screenshot differs from --dump-frame: {diff:?}");
        }
        drop(child);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
