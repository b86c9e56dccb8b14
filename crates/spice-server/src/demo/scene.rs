//! What the demo desktop shows: layout, colours and pixel generators. Integer arithmetic only,
//! so every platform produces the same pixels.

use spice_qxl::parse::Rect;

use super::font;

/// `sin` of `phase / 256` of a turn, scaled to -127..=127 (Bhaskara I's approximation).
pub fn sin8(phase: u32) -> i32 {
    let p = phase % 256;
    let x = ((p % 128) * 180 / 128) as i64;
    let num = 4 * x * (180 - x) * 127;
    let den = 40500 - x * (180 - x);
    let s = (num / den) as i32;
    if p < 128 { s } else { -s }
}

/// A deterministic hash of three numbers (for film-grain noise).
fn hash(a: u32, b: u32, c: u32) -> u32 {
    let mut h = a
        .wrapping_mul(0x9e37_79b1)
        .wrapping_add(b.wrapping_mul(0x85eb_ca77))
        .wrapping_add(c.wrapping_mul(0xc2b2_ae3d));
    h ^= h >> 15;
    h = h.wrapping_mul(0x2c1b_3c6d);
    h ^= h >> 12;
    h
}

fn clamp8(v: i32) -> u32 {
    v.clamp(0, 255) as u32
}

/// xRGB colour.
pub const fn rgb(r: u8, g: u8, b: u8) -> u32 {
    (r as u32) << 16 | (g as u32) << 8 | b as u32
}

/// Background gradient at (`x`, `y`) of a `w` x `h` screen: dark blue at the top left to teal
/// at the bottom right.
pub fn gradient(x: u32, y: u32, w: u32, h: u32) -> u32 {
    let (fx, fy) = (x * 255 / w.max(1), y * 255 / h.max(1));
    let r = 20 + fy * 40 / 255;
    let g = 40 + fy * 110 / 255 + fx * 30 / 255;
    let b = 90 + fx * 100 / 255 - fy * 20 / 255;
    rgb(r as u8, g as u8, b as u8)
}

/// Append the pixels (32-bit xRGB, little-endian, top-down) of rows `y0..y1` of the gradient.
pub fn gradient_rows(w: u32, h: u32, y0: u32, y1: u32, out: &mut Vec<u8>) {
    out.reserve(((y1 - y0) * w * 4) as usize);
    for y in y0..y1 {
        for x in 0..w {
            out.extend_from_slice(&gradient(x, y, w, h).to_le_bytes());
        }
    }
}

/// One frame of the "video": moving plasma with film grain, photo-like (smooth gradients and
/// many distinct colours) so a stream detector and an image classifier treat it as natural
/// content. 32-bit xRGB, little-endian, top-down, `w * h * 4` bytes.
pub fn video_frame(w: u32, h: u32, frame: u64) -> Vec<u8> {
    let t = (frame % (256 * 1024)) as u32;
    let mut out = Vec::with_capacity((w * h * 4) as usize);
    let (cx, cy) = (
        (w / 2) as i32 + sin8(t * 2) * (w as i32) / 600,
        (h / 2) as i32 + sin8(t * 3 + 64) * (h as i32) / 600,
    );
    for y in 0..h {
        for x in 0..w {
            let (sx, sy) = (x * 256 / w.max(1), y * 256 / h.max(1));
            let dx = x as i32 - cx;
            let dy = y as i32 - cy;
            let d = ((dx * dx + dy * dy) as u32 / 64).min(4096);
            let v =
                sin8(sx + t * 3) + sin8(sy * 2 + t * 2) + sin8(sx + sy + t * 5) + sin8(d + t * 4);
            let grain = (hash(x, y, t) % 17) as i32 - 8;
            let r = 128 + v / 4 + sin8(t + sy / 2) / 4 + grain;
            let g = 110 + sin8((v + 512) as u32 / 2 + t) / 2 + grain;
            let b = 140 - v / 5 + sin8(sx / 2 + t * 2) / 3 + grain;
            let px = clamp8(r) << 16 | clamp8(g) << 8 | clamp8(b);
            out.extend_from_slice(&px.to_le_bytes());
        }
    }
    out
}

/// Size of the cursor shape.
pub const CURSOR_SIZE: u16 = 32;

/// The cursor shape: an arrow, white with a black outline, on transparency; 32-bit ARGB
/// (`SPICE_CURSOR_TYPE_ALPHA`), top-down, hot spot (0, 0).
pub fn cursor_arrow() -> Vec<u8> {
    let n = u32::from(CURSOR_SIZE);
    let inside = |x: i32, y: i32| -> bool {
        // Head: the triangle x <= y * 2 / 3 for rows 0..=18; tail: a slanted bar below.
        let head = (0..=18).contains(&y) && x >= 0 && 3 * x <= 2 * y;
        let tail = (11..=26).contains(&y) && {
            let c = (y - 11) / 2 + 5;
            x >= c - 1 && x <= c + 1
        };
        head || tail
    };
    let mut out = Vec::with_capacity((n * n * 4) as usize);
    for y in 0..n as i32 {
        for x in 0..n as i32 {
            let px: u32 = if inside(x, y) {
                let edge = [(-1, 0), (1, 0), (0, -1), (0, 1)]
                    .iter()
                    .any(|(dx, dy)| !inside(x + dx, y + dy));
                if edge { 0xff00_0000 } else { 0xffff_ffff }
            } else {
                0
            };
            out.extend_from_slice(&px.to_le_bytes());
        }
    }
    out
}

/// Cursor position of a frame on a `w` x `h` screen: a slow Lissajous figure.
pub fn cursor_pos(frame: u64, w: u32, h: u32) -> (i16, i16) {
    let t = (frame % 65536) as u32;
    let (w, h) = (w as i32, h as i32);
    let x = w / 2 + sin8(t * 2) * (w / 2 - 40) / 127;
    let y = h / 2 + sin8(t * 3 + 40) * (h / 2 - 40) / 127;
    (
        x.clamp(0, i16::MAX as i32) as i16,
        y.clamp(0, i16::MAX as i32) as i16,
    )
}

/// A window of the demo desktop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Outer rectangle (border included).
    pub frame: Rect,
    /// Title.
    pub title: &'static str,
    /// Lines of body text.
    pub lines: &'static [&'static str],
}

/// Height of a title bar.
pub const TITLE_H: i32 = 24;
/// Border width.
pub const BORDER: i32 = 2;
/// Scale of the font.
pub const FONT_SCALE: u32 = 2;

/// Colours.
pub mod colors {
    use super::rgb;
    /// Window border.
    pub const BORDER: u32 = rgb(0x2e, 0x34, 0x36);
    /// Shadow.
    pub const SHADOW: u32 = rgb(0x10, 0x18, 0x20);
    /// Title bar.
    pub const TITLE: u32 = rgb(0x34, 0x65, 0xa4);
    /// Title text.
    pub const TITLE_TEXT: u32 = rgb(0xff, 0xff, 0xff);
    /// Window body.
    pub const BODY: u32 = rgb(0xee, 0xee, 0xec);
    /// Body text.
    pub const TEXT: u32 = rgb(0x20, 0x20, 0x20);
    /// Status text.
    pub const STATUS: u32 = rgb(0x4e, 0x9a, 0x06);
    /// Bars of the chart.
    pub const BARS: [u32; 4] = [
        rgb(0xcc, 0x00, 0x00),
        rgb(0xf5, 0x79, 0x00),
        rgb(0xed, 0xd4, 0x00),
        rgb(0x73, 0xd2, 0x16),
    ];
}

/// The fixed layout of a `w` x `h` desktop (at least 640 x 480).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Screen width.
    pub width: u32,
    /// Screen height.
    pub height: u32,
    /// Windows, back to front.
    pub windows: Vec<Window>,
    /// The animated region.
    pub video: Rect,
    /// The line of the status window rewritten every frame.
    pub status_line: Rect,
    /// Chart area of the first window (bars drawn with one clipped fill).
    pub chart: Rect,
}

fn rect(left: i32, top: i32, w: i32, h: i32) -> Rect {
    Rect {
        top,
        left,
        bottom: top + h,
        right: left + w,
    }
}

impl Window {
    /// The title bar.
    pub fn title_bar(&self) -> Rect {
        Rect {
            top: self.frame.top + BORDER,
            left: self.frame.left + BORDER,
            bottom: self.frame.top + BORDER + TITLE_H,
            right: self.frame.right - BORDER,
        }
    }

    /// The body (below the title bar, inside the border).
    pub fn body(&self) -> Rect {
        Rect {
            top: self.frame.top + BORDER + TITLE_H,
            left: self.frame.left + BORDER,
            bottom: self.frame.bottom - BORDER,
            right: self.frame.right - BORDER,
        }
    }

    /// Top-left of body text line `i`.
    pub fn line_origin(&self, i: usize) -> (i32, i32) {
        let b = self.body();
        let lh = (font::LINE_H * FONT_SCALE) as i32 + 4;
        (b.left + 10, b.top + 10 + i as i32 * lh)
    }
}

impl Layout {
    /// The layout for a `w` x `h` screen with a `vw` x `vh` video region.
    pub fn new(w: u32, h: u32, vw: u32, vh: u32) -> Self {
        let (wi, hi) = (w as i32, h as i32);
        let (vwi, vhi) = (vw as i32, vh as i32);
        let info = Window {
            frame: rect(30, 30, 440, 250),
            title: "Rust SPICE demo",
            lines: &[
                "QXL commands from a",
                "deterministic guest:",
                "fill, copy, text",
                "and a cursor ring.",
            ],
        };
        let video_frame = rect(
            (wi - vwi - 2 * BORDER - 50).max(30),
            50,
            vwi + 2 * BORDER + 20,
            vhi + 2 * BORDER + TITLE_H + 20,
        );
        let video_win = Window {
            frame: video_frame,
            title: "Video",
            lines: &[],
        };
        let status = Window {
            frame: rect(30, (hi - 190).max(300), 500, 150),
            title: "Status",
            lines: &["Frames pushed through", "the QXL command ring:"],
        };
        let vb = video_win.body();
        let video = rect(vb.left + 10, vb.top + 10, vwi, vhi);
        let (sx, sy) = status.line_origin(2);
        let status_line = rect(
            sx,
            sy,
            font::text_width("FRAME 0000000000", FONT_SCALE) as i32,
            (font::LINE_H * FONT_SCALE) as i32,
        );
        let ib = info.body();
        let chart = Rect {
            top: ib.bottom - 80,
            left: ib.left + 300,
            bottom: ib.bottom - 10,
            right: ib.right - 10,
        };
        Layout {
            width: w,
            height: h,
            windows: vec![info, video_win, status],
            video,
            status_line,
            chart,
        }
    }

    /// The bars of the chart (each filled through a clip rectangle list).
    pub fn chart_bars(&self) -> Vec<(Rect, u32)> {
        let c = self.chart;
        let n = colors::BARS.len() as i32;
        let bw = (c.right - c.left) / n;
        (0..n)
            .map(|i| {
                let hgt = (c.bottom - c.top) * (i + 1) / n;
                (
                    Rect {
                        top: c.bottom - hgt,
                        left: c.left + i * bw + 2,
                        bottom: c.bottom,
                        right: c.left + (i + 1) * bw - 2,
                    },
                    colors::BARS[i as usize],
                )
            })
            .collect()
    }
}

/// The text of the status line for a frame.
pub fn status_text(frame: u64) -> String {
    format!("FRAME {frame:010}")
}
