//! virt-viewer's `remote-viewer`, the client users actually run, under its own Xvfb display,
//! with screenshots of the X root window (ImageMagick's `import`) and a search for the expected
//! guest picture inside them (the window sits under a header bar; the guest is drawn 1:1).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::PeerError;
use crate::ppm::Ppm;
use crate::process::{require_program, run_with_timeout};

/// Xvfb plus remote-viewer connected to a SPICE URI; both are killed on drop.
#[derive(Debug)]
pub struct RemoteViewer {
    viewer: Child,
    xvfb: Child,
    display: u32,
}

fn reap(c: &mut Child) {
    let _ = c.kill();
    let _ = c.wait();
}

impl RemoteViewer {
    /// Starts Xvfb (1280x1024x24, on the first free display number from 100) and
    /// `remote-viewer <uri>` on it. Panics when Xvfb or remote-viewer is missing.
    pub fn start(uri: &str) -> Result<Self, PeerError> {
        let xvfb = require_program("Xvfb");
        let viewer = require_program("remote-viewer");
        require_program("import");
        let display = (100..200)
            .find(|n| !std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists())
            .ok_or_else(|| {
                PeerError::io(
                    "finding a free X display",
                    std::io::Error::other("none free"),
                )
            })?;
        let mut x = Command::new(xvfb)
            .args([
                &format!(":{display}"),
                "-screen",
                "0",
                "1280x1024x24",
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| PeerError::io("starting Xvfb", e))?;
        let sock = format!("/tmp/.X11-unix/X{display}");
        let deadline = Instant::now() + Duration::from_secs(15);
        while !std::path::Path::new(&sock).exists() {
            if Instant::now() > deadline {
                reap(&mut x);
                return Err(PeerError::Timeout {
                    what: format!("Xvfb to create {sock}"),
                    after: Duration::from_secs(15),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let v = Command::new(viewer)
            .arg(uri)
            .env("DISPLAY", format!(":{display}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let v = match v {
            Ok(v) => v,
            Err(e) => {
                reap(&mut x);
                return Err(PeerError::io("starting remote-viewer", e));
            }
        };
        Ok(RemoteViewer {
            viewer: v,
            xvfb: x,
            display,
        })
    }

    /// The X display number.
    pub fn display(&self) -> u32 {
        self.display
    }

    /// True while remote-viewer runs.
    pub fn running(&mut self) -> bool {
        matches!(self.viewer.try_wait(), Ok(None))
    }

    /// A screenshot of the whole X screen.
    pub fn screenshot(&self) -> Result<Ppm, PeerError> {
        let dir = tempfile::tempdir().map_err(|e| PeerError::io("tempdir", e))?;
        let out = dir.path().join("root.ppm");
        let disp = format!(":{}", self.display);
        let run = run_with_timeout(
            "import",
            &[
                "-window".as_ref(),
                "root".as_ref(),
                "-depth".as_ref(),
                "8".as_ref(),
                out.as_os_str(),
            ],
            &[("DISPLAY", disp.as_str())],
            Duration::from_secs(30),
        )?;
        if !run.success() {
            return Err(PeerError::EarlyExit {
                program: "import".into(),
                status: format!("{:?}", run.status),
                stderr: run.stderr,
            });
        }
        Ppm::read(&out)
            .map_err(|e| PeerError::io("reading the screenshot", std::io::Error::other(e)))
    }

    /// Takes screenshots until `expected` appears in one of them pixel for pixel, or `limit`
    /// passes. Returns where it was found, or the last screenshot.
    pub fn wait_showing(
        &mut self,
        expected: &Ppm,
        limit: Duration,
    ) -> Result<(u32, u32), Box<Ppm>> {
        let deadline = Instant::now() + limit;
        let mut last = None;
        loop {
            if let Ok(shot) = self.screenshot() {
                if let Some(at) = find_subimage(&shot, expected) {
                    return Ok(at);
                }
                last = Some(shot);
            }
            if Instant::now() >= deadline || !self.running() {
                return Err(Box::new(last.unwrap_or_else(|| Ppm {
                    width: 0,
                    height: 0,
                    rgb: Vec::new(),
                })));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for RemoteViewer {
    fn drop(&mut self) {
        reap(&mut self.viewer);
        reap(&mut self.xvfb);
    }
}

/// Where `needle` occurs in `haystack` pixel for pixel (top-left corner), if anywhere.
pub fn find_subimage(haystack: &Ppm, needle: &Ppm) -> Option<(u32, u32)> {
    let (hw, hh, nw, nh) = (
        haystack.width as usize,
        haystack.height as usize,
        needle.width as usize,
        needle.height as usize,
    );
    if nw == 0 || nh == 0 || nw > hw || nh > hh {
        return None;
    }
    let hrow = |y: usize| &haystack.rgb[y * hw * 3..(y + 1) * hw * 3];
    let nrow = |y: usize| &needle.rgb[y * nw * 3..(y + 1) * nw * 3];
    let first = nrow(0);
    for y in 0..=hh - nh {
        let row = hrow(y);
        for x in 0..=hw - nw {
            if &row[x * 3..(x + nw) * 3] != first {
                continue;
            }
            if (1..nh).all(|dy| &hrow(y + dy)[x * 3..(x + nw) * 3] == nrow(dy)) {
                return Some((x as u32, y as u32));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Ppm {
        let mut rgb = Vec::new();
        for y in 0..h {
            for x in 0..w {
                rgb.extend_from_slice(&f(x, y));
            }
        }
        Ppm {
            width: w,
            height: h,
            rgb,
        }
    }

    #[test]
    fn finds_a_subimage_and_rejects_a_near_miss() {
        let hay = img(40, 30, |x, y| [x as u8, y as u8, (x * y) as u8]);
        let needle = img(7, 5, |x, y| {
            [(x + 12) as u8, (y + 9) as u8, ((x + 12) * (y + 9)) as u8]
        });
        assert_eq!(find_subimage(&hay, &needle), Some((12, 9)));
        let mut off = needle.clone();
        off.rgb[3 * 7 * 4 + 5] ^= 1;
        assert_eq!(find_subimage(&hay, &off), None);
        assert_eq!(find_subimage(&needle, &hay), None);
    }
}
