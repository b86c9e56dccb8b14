//! A scripted client on spice-gtk's GObject library (`gi.repository.SpiceClientGLib`), run with
//! Debian's `/usr/bin/python3`: the real client library remote-viewer is built on.
//!
//! The script (`scripts/gtk_client.py`, embedded here) connects, opens every channel the server
//! advertises, and can write the primary surface as a PPM once the display is quiet, send key and
//! mouse events through the inputs channel, capture playback PCM, and wait for the agent. It
//! reports what happened as JSON lines, parsed into [`GtkRun::events`].

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::PeerError;
use crate::process::{ProgramOutput, require_program, run_with_timeout};

/// The Python interpreter that has `gi` (Debian's; the first `python3` on PATH may not).
pub const PYTHON: &str = "/usr/bin/python3";

/// The scenario script.
pub const SCRIPT: &str = include_str!("../scripts/gtk_client.py");

/// One input step of a [`GtkScenario`].
#[derive(Debug, Clone, PartialEq)]
pub enum GtkInput {
    /// Press and release a PC scancode (`spice_inputs_channel_key_press_and_release`).
    Key(u32),
    /// Press a scancode.
    KeyDown(u32),
    /// Release a scancode.
    KeyUp(u32),
    /// Relative motion (dx, dy, button state).
    Motion(i32, i32, i32),
    /// Absolute position (x, y, display, button state).
    Position(i32, i32, i32, i32),
    /// Button press (button, button state).
    Press(i32, i32),
    /// Button release (button, button state).
    Release(i32, i32),
    /// Let the queued messages go out for this many milliseconds.
    SleepMs(u32),
}

impl GtkInput {
    fn to_json(&self) -> Value {
        match *self {
            GtkInput::Key(s) => json!(["key", s]),
            GtkInput::KeyDown(s) => json!(["key_down", s]),
            GtkInput::KeyUp(s) => json!(["key_up", s]),
            GtkInput::Motion(dx, dy, b) => json!(["motion", dx, dy, b]),
            GtkInput::Position(x, y, d, b) => json!(["position", x, y, d, b]),
            GtkInput::Press(btn, b) => json!(["press", btn, b]),
            GtkInput::Release(btn, b) => json!(["release", btn, b]),
            GtkInput::SleepMs(ms) => json!(["sleep_ms", ms]),
        }
    }
}

/// What the scripted client does. Build with [`GtkScenario::new`] and the setters.
#[derive(Debug, Clone)]
pub struct GtkScenario {
    port: Option<u16>,
    tls_port: Option<u16>,
    ca_file: Option<PathBuf>,
    host: String,
    password: Option<String>,
    primary_out: Option<PathBuf>,
    settle: Duration,
    inputs: Vec<GtkInput>,
    inputs_after_primary: bool,
    playback_out: Option<PathBuf>,
    playback_for: Option<Duration>,
    wait_agent: bool,
    run_for: Duration,
    port_echo: Option<u32>,
    clipboard: Option<Value>,
    file_copy: Option<PathBuf>,
    resize: Vec<(u32, u32)>,
    timeout: Duration,
}

impl GtkScenario {
    /// Connect to `127.0.0.1:port` (plain), no password, nothing else; 30 s time limit.
    pub fn new(port: u16) -> Self {
        GtkScenario {
            port: Some(port),
            tls_port: None,
            ca_file: None,
            host: "127.0.0.1".into(),
            password: None,
            primary_out: None,
            settle: Duration::from_millis(1000),
            inputs: Vec::new(),
            inputs_after_primary: true,
            playback_out: None,
            playback_for: None,
            wait_agent: false,
            run_for: Duration::ZERO,
            port_echo: None,
            clipboard: None,
            file_copy: None,
            resize: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }

    /// Connect over TLS to `127.0.0.1:tls_port` only (no plain port), trusting `ca_file`.
    pub fn new_tls(tls_port: u16, ca_file: impl Into<PathBuf>) -> Self {
        let mut s = Self::new(0);
        s.port = None;
        s.tls_port = Some(tls_port);
        s.ca_file = Some(ca_file.into());
        s
    }

    /// The ticket password.
    pub fn password(mut self, pw: &str) -> Self {
        self.password = Some(pw.into());
        self
    }

    /// Write the primary surface here once no update came for `settle`.
    pub fn primary_out(mut self, path: impl Into<PathBuf>, settle: Duration) -> Self {
        self.primary_out = Some(path.into());
        self.settle = settle;
        self
    }

    /// Send these inputs once the inputs channel is open and the primary surface exists.
    pub fn inputs(mut self, inputs: Vec<GtkInput>) -> Self {
        self.inputs = inputs;
        self
    }

    /// Send the inputs as soon as the inputs channel is open, without waiting for a primary
    /// surface (for servers without a display channel).
    pub fn inputs_without_display(mut self) -> Self {
        self.inputs_after_primary = false;
        self
    }

    /// Append playback PCM to `path` and keep receiving for `duration` after playback starts.
    pub fn playback(mut self, path: impl Into<PathBuf>, duration: Duration) -> Self {
        self.playback_out = Some(path.into());
        self.playback_for = Some(duration);
        self
    }

    /// Wait until the main channel reports the agent connected.
    pub fn wait_agent(mut self) -> Self {
        self.wait_agent = true;
        self
    }

    /// On the first port channel: once open, send PORT_EVENT BREAK and write `lines` lines of
    /// 27 bytes (`line NNNNNN from spice-gtk\n`), then wait until as many bytes came back
    /// (events `port` with name/opened, `port_sent`, `port_echo` with `bytes` and `equal`).
    pub fn port_echo(mut self, lines: u32) -> Self {
        self.port_echo = Some(lines);
        self
    }

    /// Stay connected at least this long (e.g. to receive a video stream).
    pub fn run_for(mut self, duration: Duration) -> Self {
        self.run_for = duration;
        self
    }

    /// A clipboard round trip through the agent (implies [`GtkScenario::wait_agent`]): once
    /// the agent announced its caps, grab `selection` with `text` and answer the agent's
    /// request (events `clipboard_request`, `clipboard_sent`); fetch the agent's own grabs as
    /// UTF-8 text (events `clipboard_grab`, `clipboard_data` with `text`). The run finishes
    /// once both happened.
    pub fn clipboard_round_trip(mut self, selection: u32, text: &str) -> Self {
        self.wait_agent = true;
        self.clipboard = Some(json!({"send": text, "selection": selection, "fetch_agent": true}));
        self
    }

    /// Sends `path` to the agent with `spice_main_channel_file_copy_async` once the agent
    /// announced its caps (implies [`GtkScenario::wait_agent`]); event `file_copy_done` with
    /// `ok` when it ends. The run finishes once it ended.
    pub fn file_copy(mut self, path: impl Into<PathBuf>) -> Self {
        self.wait_agent = true;
        self.file_copy = Some(path.into());
        self
    }

    /// Resizes the guest display through the agent (implies [`GtkScenario::wait_agent`]):
    /// once the agent announced `VD_AGENT_CAP_MONITORS_CONFIG` and a primary surface exists,
    /// for each size in turn: `spice_main_channel_update_display_enabled(0, TRUE)`,
    /// `spice_main_channel_update_display(0, 0, 0, w, h)`,
    /// `spice_main_channel_send_monitor_config` (event `resize_sent`), then wait until the
    /// display channel has a marked primary of that size (event `resize_done` with
    /// `get_primary`, what `spice_display_channel_get_primary` says). Events
    /// `primary_destroy` / `primary_create` come from the display channel's signals. The
    /// run finishes once every size was reached.
    pub fn resize(mut self, sizes: &[(u32, u32)]) -> Self {
        self.wait_agent = true;
        self.resize = sizes.to_vec();
        self
    }

    /// The script's own time limit (the process gets 15 s more).
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    fn to_json(&self) -> Value {
        json!({
            "host": self.host,
            "port": self.port,
            "tls_port": self.tls_port,
            "ca_file": self.ca_file.as_ref().map(|p| p.display().to_string()),
            "password": self.password,
            "timeout_ms": self.timeout.as_millis() as u64,
            "settle_ms": self.settle.as_millis() as u64,
            "primary_out": self.primary_out.as_ref().map(|p| p.display().to_string()),
            "playback_out": self.playback_out.as_ref().map(|p| p.display().to_string()),
            "playback_ms": self.playback_for.map(|d| d.as_millis() as u64),
            "wait_agent": self.wait_agent,
            "run_ms": self.run_for.as_millis() as u64,
            "port_echo": self.port_echo,
            "clipboard": self.clipboard,
            "file_copy": self.file_copy,
            "resize": self.resize.iter().map(|(w, h)| json!([w, h])).collect::<Vec<_>>(),
            "inputs": self.inputs.iter().map(GtkInput::to_json).collect::<Vec<_>>(),
            "inputs_after_primary": self.inputs_after_primary,
        })
    }

    /// Runs the scenario. Panics (never skips) when Python's `gi` or spice-gtk's typelib is
    /// missing; an error when the process hangs past the time limit.
    pub fn run(&self) -> Result<GtkRun, PeerError> {
        require_gi();
        let dir = tempfile::tempdir().map_err(|e| PeerError::io("tempdir", e))?;
        let script = dir.path().join("gtk_client.py");
        std::fs::write(&script, SCRIPT).map_err(|e| PeerError::io("writing the script", e))?;
        let arg = self.to_json().to_string();
        let out = run_with_timeout(
            PYTHON,
            &[script.as_os_str(), arg.as_ref()],
            &[],
            self.timeout + Duration::from_secs(15),
        )?;
        Ok(GtkRun::from_output(out))
    }
}

/// Panics with the install hint when `/usr/bin/python3` cannot import spice-gtk's GObject
/// bindings.
pub fn require_gi() {
    require_program(PYTHON);
    let check = run_with_timeout(
        PYTHON,
        &[
            "-c".as_ref(),
            "import gi; gi.require_version('SpiceClientGLib', '2.0'); \
             from gi.repository import SpiceClientGLib"
                .as_ref(),
        ],
        &[],
        Duration::from_secs(30),
    )
    .expect("running python3");
    assert!(
        check.success(),
        "spice-gtk's Python bindings are missing (Debian packages gir1.2-spiceclientglib-2.0 \
         python3-gi); {}. Real-peer tests never skip. stderr: {}",
        crate::process::INSTALL_HINT,
        check.stderr
    );
}

/// What a [`GtkScenario`] run printed.
#[derive(Debug, Clone)]
pub struct GtkRun {
    /// Every JSON event line, in order.
    pub events: Vec<Value>,
    /// The raw process output.
    pub output: ProgramOutput,
}

impl GtkRun {
    fn from_output(output: ProgramOutput) -> Self {
        let events = output
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect();
        GtkRun { events, output }
    }

    /// True when the script finished its scenario (exit 0 and a final `done` with ok).
    pub fn ok(&self) -> bool {
        self.output.success()
            && self
                .events
                .last()
                .is_some_and(|e| e["event"] == "done" && e["ok"] == true)
    }

    /// Panics, with the events and the client's stderr, unless [`Self::ok`].
    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(
            self.ok(),
            "spice-gtk run failed: {:?}\nstderr: {}",
            self.events,
            self.output.stderr
        );
    }

    /// The events named `name`.
    pub fn events_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events.iter().filter(move |e| e["event"] == name)
    }

    /// The `channel_event` events of errors (spice-gtk's `SpiceChannelEvent` values from
    /// `ERROR_CONNECT` = 20 up), as `(channel, value)`.
    pub fn channel_errors(&self) -> Vec<(String, i64)> {
        self.events_named("channel_event")
            .filter_map(|e| Some((e["channel"].as_str()?.to_owned(), e["what"].as_i64()?)))
            .filter(|(_, what)| *what >= 20)
            .collect()
    }

    /// The channel type names spice-gtk created (`SpiceMainChannel`, `SpiceDisplayChannel`, ...).
    pub fn channels(&self) -> Vec<String> {
        self.events_named("channel_new")
            .filter_map(|e| e["channel"].as_str().map(str::to_owned))
            .collect()
    }
}
