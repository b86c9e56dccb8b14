//! The demo host's guest agent: an in-process [`CharDevice`] of kind
//! [`CharDeviceKind::Agent`] that speaks the VDAgent protocol the way `spice-vdagent` does,
//! for the demo desktop and for tests.
//!
//! It answers `ANNOUNCE_CAPABILITIES`, acknowledges `MONITORS_CONFIG` (applied through
//! [`DemoAgentConfig::on_monitors_config`], e.g. resizing the demo desktop; without a hook
//! the request is recorded and answered with an error), takes part in the clipboard
//! (by demand: the client's grabs are fetched as UTF-8 text and stored, and the agent can grab
//! with its own text, [`DemoAgent::grab_text`]), receives file transfers into memory or a
//! directory (checked against the announced size, answered with a status) and records the
//! agent mouse state.
//!
//! Memory is bounded: client messages above [`DemoAgentConfig::max_message_size`] break the
//! stream (the agent resets, as a real agent would on a corrupt stream); a file transfer
//! above [`DemoAgentConfig::max_file_size`] is refused with `NOT_ENOUGH_SPACE`; replies wait
//! in an outbox of at most [`OUTBOX_MAX`] bytes, and while it is full the device takes no
//! more input.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use spice_proto::agent::{
    AgentCaps, AgentMessage, AgentMessageType, AgentReassembler, AnnounceCapabilities, Clipboard,
    ClipboardGrab, ClipboardOptions, ClipboardRequest, ClipboardSelection, ClipboardType,
    FileXferDetail, FileXferResult, FileXferStatus, MonitorsConfig, MouseState, Reply, ReplyError,
    VdiDechunker, VdiPort, cap, write_vdi_chunks,
};

use std::time::Instant;

use crate::channel::Waker;
use crate::demo::DemoDesktop;
use crate::display::{SharedWorker, millis_since};
use crate::host::{CharDevice, CharDeviceKind};
use crate::session::lock;

/// Largest backlog of replies waiting for the server to read.
pub const OUTBOX_MAX: usize = 1 << 20;

/// Called with a client's monitors layout; returns true when it was applied.
pub type MonitorsConfigHook = Arc<dyn Fn(&MonitorsConfig) -> bool + Send + Sync>;

/// Settings of a [`DemoAgent`].
#[derive(Clone)]
pub struct DemoAgentConfig {
    /// Largest client message body (clipboard data, transfer chunks).
    pub max_message_size: usize,
    /// Largest file accepted by a transfer.
    pub max_file_size: u64,
    /// Where received files are written (in memory only when `None`).
    pub file_dir: Option<PathBuf>,
    /// File transfer disabled (answers `DISABLED`, announces `FILE_XFER_DISABLED`).
    pub file_xfer_disabled: bool,
    /// Applies a monitors layout (the demo desktop's resize).
    pub on_monitors_config: Option<MonitorsConfigHook>,
    /// Text the agent grabs the clipboard with once the client announced its caps.
    pub initial_clipboard: Option<String>,
}

impl Default for DemoAgentConfig {
    fn default() -> Self {
        Self {
            max_message_size: 16 << 20,
            max_file_size: 256 << 20,
            file_dir: None,
            file_xfer_disabled: false,
            on_monitors_config: None,
            initial_clipboard: None,
        }
    }
}

impl std::fmt::Debug for DemoAgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoAgentConfig")
            .field("max_message_size", &self.max_message_size)
            .field("max_file_size", &self.max_file_size)
            .field("file_dir", &self.file_dir)
            .field("file_xfer_disabled", &self.file_xfer_disabled)
            .field("on_monitors_config", &self.on_monitors_config.is_some())
            .field("initial_clipboard", &self.initial_clipboard)
            .finish()
    }
}

/// A file a client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedFile {
    /// The transfer id.
    pub id: u32,
    /// The name the client gave (as sent).
    pub name: String,
    /// The contents (empty when written to [`DemoAgentConfig::file_dir`]).
    pub data: Vec<u8>,
    /// Where it was written, if a directory was configured.
    pub path: Option<PathBuf>,
}

#[derive(Debug)]
struct Transfer {
    name: String,
    size: u64,
    data: Vec<u8>,
}

/// Who owns one clipboard selection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    None,
    Client(Vec<ClipboardType>),
    Agent(String),
}

#[derive(Debug)]
struct State {
    guest_open: bool,
    client_open: bool,
    dechunker: VdiDechunker,
    client_stream: AgentReassembler,
    server_stream: AgentReassembler,
    outbox: Vec<u8>,
    client_caps: Option<AgentCaps>,
    owners: HashMap<u8, Owner>,
    client_text: HashMap<u8, String>,
    transfers: HashMap<u32, Transfer>,
    received: Vec<ReceivedFile>,
    monitors: Vec<MonitorsConfig>,
    mouse: Option<MouseState>,
    max_clipboard: Option<i32>,
    errors: u64,
}

/// The demo agent device. See the module docs.
pub struct DemoAgent {
    config: DemoAgentConfig,
    state: Mutex<State>,
    waker: Mutex<Option<Waker>>,
}

impl std::fmt::Debug for DemoAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoAgent")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl DemoAgent {
    /// A running agent (guest side open).
    pub fn new(config: DemoAgentConfig) -> Arc<Self> {
        let max = config.max_message_size;
        Arc::new(Self {
            config,
            state: Mutex::new(State {
                guest_open: true,
                client_open: false,
                dechunker: VdiDechunker::new(),
                client_stream: AgentReassembler::new(max),
                server_stream: AgentReassembler::new(64 * 1024),
                outbox: Vec::new(),
                client_caps: None,
                owners: HashMap::new(),
                client_text: HashMap::new(),
                transfers: HashMap::new(),
                received: Vec::new(),
                monitors: Vec::new(),
                mouse: None,
                max_clipboard: None,
                errors: 0,
            }),
            waker: Mutex::new(None),
        })
    }

    /// The capabilities this agent announces.
    pub fn caps(&self) -> AgentCaps {
        let mut c = AgentCaps::with(&[
            cap::MOUSE_STATE,
            cap::MONITORS_CONFIG,
            cap::REPLY,
            cap::DISPLAY_CONFIG,
            cap::CLIPBOARD_BY_DEMAND,
            cap::CLIPBOARD_SELECTION,
            cap::GUEST_LINEEND_LF,
            cap::MAX_CLIPBOARD,
            cap::FILE_XFER_DETAILED_ERRORS,
            cap::CLIPBOARD_NO_RELEASE_ON_REGRAB,
        ]);
        if self.config.file_xfer_disabled {
            c.set(cap::FILE_XFER_DISABLED);
        }
        c
    }

    fn wake(&self) {
        if let Some(w) = lock(&self.waker).clone() {
            w.wake();
        }
    }

    /// Starts (true) or stops (false) the agent: the server reports it connected or
    /// disconnected to its clients. Stopping drops all agent state but what was received.
    pub fn set_running(&self, on: bool) {
        {
            let mut st = lock(&self.state);
            st.guest_open = on;
            if !on {
                Self::reset_session(&mut st);
                st.outbox.clear();
                st.dechunker = VdiDechunker::new();
                st.client_stream.reset();
                st.server_stream.reset();
            }
        }
        self.wake();
    }

    /// Grabs clipboard `selection` with `text` (UTF-8); the client can then request it.
    pub fn grab_text(&self, selection: ClipboardSelection, text: &str) {
        {
            let mut st = lock(&self.state);
            st.owners.insert(selection.0, Owner::Agent(text.to_owned()));
            let opts = Self::opts(&st, &self.caps());
            Self::send(
                &mut st,
                &AgentMessage::ClipboardGrab(ClipboardGrab {
                    selection: opts.selection.then_some(selection),
                    serial: None,
                    types: vec![ClipboardType::UTF8_TEXT],
                }),
            );
        }
        self.wake();
    }

    /// The last UTF-8 text the client sent for `selection`.
    pub fn client_text(&self, selection: ClipboardSelection) -> Option<String> {
        lock(&self.state).client_text.get(&selection.0).cloned()
    }

    /// The files received so far.
    pub fn received_files(&self) -> Vec<ReceivedFile> {
        lock(&self.state).received.clone()
    }

    /// Every monitors layout the client asked for, oldest first.
    pub fn monitors_requests(&self) -> Vec<MonitorsConfig> {
        lock(&self.state).monitors.clone()
    }

    /// The last agent mouse state from the server.
    pub fn mouse_state(&self) -> Option<MouseState> {
        lock(&self.state).mouse
    }

    /// The client's capabilities, once announced.
    pub fn client_caps(&self) -> Option<AgentCaps> {
        lock(&self.state).client_caps.clone()
    }

    /// The client's `MAX_CLIPBOARD`, if sent.
    pub fn max_clipboard(&self) -> Option<i32> {
        lock(&self.state).max_clipboard
    }

    /// Malformed messages and broken streams seen so far.
    pub fn errors(&self) -> u64 {
        lock(&self.state).errors
    }

    fn opts(st: &State, ours: &AgentCaps) -> ClipboardOptions {
        st.client_caps
            .as_ref()
            .map(|c| ClipboardOptions::negotiated(ours, c))
            .unwrap_or_default()
    }

    fn reset_session(st: &mut State) {
        st.client_caps = None;
        st.owners.clear();
        st.transfers.clear();
    }

    /// Queues a message to the client (VDI port CLIENT).
    fn send(st: &mut State, msg: &AgentMessage<'_>) {
        let mut bytes = Vec::new();
        match msg.encode(0, &mut bytes) {
            Ok(()) => write_vdi_chunks(VdiPort::CLIENT, &bytes, &mut st.outbox),
            Err(e) => tracing::warn!(error = %e, "demo agent: encoding a reply"),
        }
    }

    fn handle_client(&self, st: &mut State, header_type: AgentMessageType, body: &[u8]) {
        let ours = self.caps();
        let opts = Self::opts(st, &ours);
        let msg = match AgentMessage::decode(header_type, body, opts) {
            Ok(m) => m,
            Err(e) => {
                st.errors += 1;
                tracing::warn!(error = %e, msg_type = header_type.0, "demo agent: bad message");
                return;
            }
        };
        match msg {
            AgentMessage::AnnounceCapabilities(a) => {
                let first = st.client_caps.is_none();
                st.client_caps = Some(a.caps);
                if a.request != 0 {
                    Self::send(
                        st,
                        &AgentMessage::AnnounceCapabilities(AnnounceCapabilities {
                            request: 0,
                            caps: ours.clone(),
                        }),
                    );
                }
                if first {
                    if let Some(text) = &self.config.initial_clipboard {
                        let opts = Self::opts(st, &ours);
                        st.owners.insert(0, Owner::Agent(text.clone()));
                        Self::send(
                            st,
                            &AgentMessage::ClipboardGrab(ClipboardGrab {
                                selection: opts.selection.then_some(ClipboardSelection::CLIPBOARD),
                                serial: None,
                                types: vec![ClipboardType::UTF8_TEXT],
                            }),
                        );
                    }
                }
            }
            AgentMessage::MonitorsConfig(mc) => {
                let applied = self
                    .config
                    .on_monitors_config
                    .as_ref()
                    .is_some_and(|hook| hook(&mc));
                tracing::info!(monitors = ?mc.monitors, applied, "demo agent: monitors config");
                st.monitors.push(mc);
                Self::reply(st, AgentMessageType::MONITORS_CONFIG, applied);
            }
            AgentMessage::DisplayConfig(_) => {
                Self::reply(st, AgentMessageType::DISPLAY_CONFIG, true);
            }
            AgentMessage::ClipboardGrab(g) => {
                let sel = g.selection.unwrap_or(ClipboardSelection::CLIPBOARD);
                let has_text = g.types.contains(&ClipboardType::UTF8_TEXT);
                st.owners.insert(sel.0, Owner::Client(g.types));
                if has_text {
                    // Fetch it right away: the demo keeps what the client copies.
                    Self::send(
                        st,
                        &AgentMessage::ClipboardRequest(ClipboardRequest {
                            selection: g.selection,
                            data_type: ClipboardType::UTF8_TEXT,
                        }),
                    );
                }
            }
            AgentMessage::Clipboard(c) => {
                let sel = c.selection.unwrap_or(ClipboardSelection::CLIPBOARD);
                if c.data_type == ClipboardType::UTF8_TEXT {
                    let text = String::from_utf8_lossy(c.data).into_owned();
                    tracing::info!(selection = sel.0, len = text.len(), "demo agent: clipboard");
                    st.client_text.insert(sel.0, text);
                }
            }
            AgentMessage::ClipboardRequest(r) => {
                let sel = r.selection.unwrap_or(ClipboardSelection::CLIPBOARD);
                let text = match st.owners.get(&sel.0) {
                    Some(Owner::Agent(t)) if r.data_type == ClipboardType::UTF8_TEXT => {
                        Some(t.clone())
                    }
                    _ => None,
                };
                let (data_type, data) = match &text {
                    Some(t) => (ClipboardType::UTF8_TEXT, t.as_bytes()),
                    None => (ClipboardType::NONE, &[][..]),
                };
                Self::send(
                    st,
                    &AgentMessage::Clipboard(Clipboard {
                        selection: r.selection,
                        data_type,
                        data,
                    }),
                );
            }
            AgentMessage::ClipboardRelease(r) => {
                let sel = r.selection.unwrap_or(ClipboardSelection::CLIPBOARD);
                if matches!(st.owners.get(&sel.0), Some(Owner::Client(_))) {
                    st.owners.insert(sel.0, Owner::None);
                }
            }
            AgentMessage::MaxClipboard { max } => st.max_clipboard = Some(max),
            AgentMessage::FileXferStart(s) => self.xfer_start(st, s.id, s.data),
            AgentMessage::FileXferData(d) => self.xfer_data(st, d.id, d.data),
            AgentMessage::FileXferStatus(s) => {
                // The client cancelled (or failed) a transfer.
                if st.transfers.remove(&s.id).is_some() {
                    tracing::info!(id = s.id, result = s.result.0, "demo agent: transfer ended");
                }
            }
            other => {
                tracing::debug!(msg_type = other.msg_type().0, "demo agent: ignored");
            }
        }
    }

    fn reply(st: &mut State, msg_type: AgentMessageType, ok: bool) {
        Self::send(
            st,
            &AgentMessage::Reply(Reply {
                msg_type,
                error: if ok {
                    ReplyError::SUCCESS
                } else {
                    ReplyError::ERROR
                },
            }),
        );
    }

    fn status(st: &mut State, id: u32, result: FileXferResult, detail: FileXferDetail<'_>) {
        Self::send(
            st,
            &AgentMessage::FileXferStatus(FileXferStatus { id, result, detail }),
        );
    }

    fn xfer_start(&self, st: &mut State, id: u32, keyfile: &[u8]) {
        if self.config.file_xfer_disabled {
            return Self::status(st, id, FileXferResult::DISABLED, FileXferDetail::None);
        }
        let Some((name, size)) = parse_xfer_keyfile(keyfile) else {
            st.errors += 1;
            return Self::status(st, id, FileXferResult::ERROR, FileXferDetail::None);
        };
        if st.transfers.contains_key(&id) {
            return Self::status(st, id, FileXferResult::ERROR, FileXferDetail::None);
        }
        let in_flight: u64 = st.transfers.values().map(|t| t.size).sum();
        let free = self.config.max_file_size.saturating_sub(in_flight);
        if size > free {
            return Self::status(
                st,
                id,
                FileXferResult::NOT_ENOUGH_SPACE,
                FileXferDetail::NotEnoughSpace {
                    disk_free_space: free,
                },
            );
        }
        tracing::info!(id, %name, size, "demo agent: file transfer");
        st.transfers.insert(
            id,
            Transfer {
                name,
                size,
                data: Vec::new(),
            },
        );
        if size == 0 {
            self.finish_transfer(st, id);
        } else {
            Self::status(st, id, FileXferResult::CAN_SEND_DATA, FileXferDetail::None);
        }
    }

    fn xfer_data(&self, st: &mut State, id: u32, data: &[u8]) {
        let Some(t) = st.transfers.get_mut(&id) else {
            // Unknown or already failed transfer: ignored, as vdagent does.
            return;
        };
        if t.data.len() as u64 + data.len() as u64 > t.size {
            st.transfers.remove(&id);
            st.errors += 1;
            return Self::status(st, id, FileXferResult::ERROR, FileXferDetail::None);
        }
        t.data.extend_from_slice(data);
        if t.data.len() as u64 == t.size {
            self.finish_transfer(st, id);
        }
    }

    fn finish_transfer(&self, st: &mut State, id: u32) {
        let Some(t) = st.transfers.remove(&id) else {
            return;
        };
        let mut file = ReceivedFile {
            id,
            name: t.name,
            data: t.data,
            path: None,
        };
        if let Some(dir) = &self.config.file_dir {
            let path = dir.join(safe_file_name(&file.name, id));
            if let Err(e) = std::fs::write(&path, &file.data) {
                tracing::warn!(error = %e, path = %path.display(), "demo agent: saving a file");
                return Self::status(
                    st,
                    id,
                    FileXferResult::ERROR,
                    FileXferDetail::Error {
                        error_type: spice_proto::agent::FILE_XFER_ERROR_GLIB_IO,
                        error_code: 0,
                    },
                );
            }
            file.data = Vec::new();
            file.path = Some(path);
        }
        st.received.push(file);
        Self::status(st, id, FileXferResult::SUCCESS, FileXferDetail::None);
    }

    fn handle_server(st: &mut State, header_type: AgentMessageType, body: &[u8]) {
        match AgentMessage::decode(header_type, body, ClipboardOptions::default()) {
            Ok(AgentMessage::MouseState(m)) => st.mouse = Some(m),
            Ok(AgentMessage::ClientDisconnected) => {
                tracing::info!("demo agent: client disconnected");
                Self::reset_session(st);
                st.client_stream.reset();
            }
            Ok(other) => tracing::debug!(msg_type = other.msg_type().0, "demo agent: ignored"),
            Err(e) => {
                st.errors += 1;
                tracing::warn!(error = %e, "demo agent: bad server message");
            }
        }
    }

    fn take_input(&self, st: &mut State, mut input: &[u8]) {
        loop {
            let (port, mut piece) = match st.dechunker.push(&mut input) {
                Ok(Some(p)) => p,
                Ok(None) => return,
                Err(e) => {
                    st.errors += 1;
                    tracing::warn!(error = %e, "demo agent: device stream");
                    continue;
                }
            };
            while !piece.is_empty() {
                let server = port == VdiPort::SERVER;
                let reasm = if server {
                    &mut st.server_stream
                } else {
                    &mut st.client_stream
                };
                match reasm.push(&mut piece) {
                    Ok(Some(m)) => {
                        let (t, body) = (m.header.msg_type, m.body.to_vec());
                        if server {
                            Self::handle_server(st, t, &body);
                        } else {
                            self.handle_client(st, t, &body);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        // The stream is corrupt: drop the rest of this piece.
                        st.errors += 1;
                        tracing::warn!(error = %e, "demo agent: message stream");
                        break;
                    }
                }
            }
        }
    }
}

impl CharDevice for DemoAgent {
    fn kind(&self) -> CharDeviceKind {
        CharDeviceKind::Agent
    }

    fn write(&self, data: &[u8]) -> usize {
        let taken = {
            let mut st = lock(&self.state);
            if !st.guest_open || st.outbox.len() >= OUTBOX_MAX {
                0
            } else {
                self.take_input(&mut st, data);
                data.len()
            }
        };
        if taken > 0 {
            self.wake();
        }
        taken
    }

    fn read(&self, buf: &mut [u8]) -> usize {
        let mut st = lock(&self.state);
        let n = buf.len().min(st.outbox.len());
        buf[..n].copy_from_slice(&st.outbox[..n]);
        st.outbox.drain(..n);
        n
    }

    fn state(&self, connected: bool) {
        let mut st = lock(&self.state);
        st.client_open = connected;
        if !connected {
            Self::reset_session(&mut st);
        }
    }

    fn set_waker(&self, waker: Option<Waker>) -> bool {
        *lock(&self.waker) = waker;
        true
    }

    fn guest_connected(&self) -> bool {
        lock(&self.state).guest_open
    }
}

/// The demo host's devices without a display: a [`DemoAgent`] with default settings (files
/// kept in memory, monitors requests recorded and answered with an error: there is no
/// desktop to resize). With the demo desktop use [`demo_host_with_display`].
pub fn demo_host() -> crate::host::Host {
    crate::host::Host {
        char_devices: vec![DemoAgent::new(DemoAgentConfig::default()) as Arc<dyn CharDevice>],
        ..crate::host::Host::default()
    }
}

/// The demo host's devices for the demo desktop driven by `worker` (display channel epoch
/// `epoch`): a [`DemoAgent`] whose monitors configs resize the desktop
/// ([`demo_resize_hook`]).
pub fn demo_host_with_display(
    worker: SharedWorker<DemoDesktop>,
    epoch: Instant,
) -> crate::host::Host {
    let agent = DemoAgent::new(DemoAgentConfig {
        on_monitors_config: Some(demo_resize_hook(worker, epoch)),
        ..DemoAgentConfig::default()
    });
    crate::host::Host {
        char_devices: vec![agent as Arc<dyn CharDevice>],
        ..crate::host::Host::default()
    }
}

/// A [`MonitorsConfigHook`] that resizes the demo desktop driven by `worker` to the first
/// monitor's size, as `spice-vdagent` sets the guest's mode: the desktop destroys and
/// recreates its primary surface ([`DemoDesktop::resize`], clamped to its bounds) and the
/// display worker handles both requests at once (clients get `SURFACE_DESTROY`, then
/// `SURFACE_CREATE`, the monitors config and `MARK` of the new size, then the redrawn
/// desktop). `epoch` is the display channel's clock origin. Applied (true) when the
/// desktop took the request, even if clamped.
pub fn demo_resize_hook(worker: SharedWorker<DemoDesktop>, epoch: Instant) -> MonitorsConfigHook {
    Arc::new(move |mc: &MonitorsConfig| {
        let Some(m) = mc.monitors.first().filter(|m| m.width > 0 && m.height > 0) else {
            return false;
        };
        let mut w = lock(&*worker);
        let result = w.device_mut().resize(m.width, m.height);
        let now_ms = millis_since(epoch, Instant::now());
        for r in w.device_mut().take_io_requests() {
            w.handle_io(r, now_ms);
        }
        match result {
            Ok((width, height)) => {
                tracing::info!(width, height, "demo agent: desktop resized");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "demo agent: resize failed");
                false
            }
        }
    })
}

/// Reads `name` and `size` from the `[vdagent-file-xfer]` key file of `FILE_XFER_START`.
pub fn parse_xfer_keyfile(data: &[u8]) -> Option<(String, u64)> {
    let text = std::str::from_utf8(data.strip_suffix(&[0]).unwrap_or(data)).ok()?;
    let mut in_group = false;
    let (mut name, mut size) = (None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_group = line == "[vdagent-file-xfer]";
        } else if in_group {
            if let Some((k, v)) = line.split_once('=') {
                match k.trim() {
                    "name" => name = Some(v.trim().to_owned()),
                    "size" => size = v.trim().parse().ok(),
                    _ => {}
                }
            }
        }
    }
    Some((name?, size?))
}

/// A file name safe to create in a directory: the last path component, never empty, `.` or
/// `..`.
fn safe_file_name(name: &str, id: u32) -> String {
    let base = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .replace('\0', "");
    if base.is_empty() || base == "." || base == ".." {
        format!("transfer-{id}")
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyfile() {
        let k = b"[vdagent-file-xfer]\nname=a b.txt\nsize=12\n\0";
        assert_eq!(parse_xfer_keyfile(k), Some(("a b.txt".into(), 12)));
        assert_eq!(parse_xfer_keyfile(b"[other]\nname=x\nsize=1\n"), None);
        assert_eq!(
            parse_xfer_keyfile(b"[vdagent-file-xfer]\nname=x\nsize=-1\n"),
            None
        );
        assert_eq!(parse_xfer_keyfile(&[0xff, 0xfe]), None);
    }

    #[test]
    fn safe_names() {
        assert_eq!(safe_file_name("../../etc/passwd", 1), "passwd");
        assert_eq!(safe_file_name("..", 2), "transfer-2");
        assert_eq!(safe_file_name("dir/", 3), "transfer-3");
        assert_eq!(safe_file_name("c:\\x\\y.txt", 4), "y.txt");
    }
}
