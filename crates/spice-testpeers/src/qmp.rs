//! A minimal QMP (QEMU Machine Protocol) client over a unix socket.
//!
//! QMP is line-oriented JSON: a greeting, then `{"execute": ...}` commands each answered by
//! `{"return": ...}` or `{"error": {...}}`, with asynchronous `{"event": ...}` lines interleaved
//! (those are kept in [`Qmp::events`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::PeerError;

/// The longest line accepted from QEMU (QMP answers here are small).
const MAX_LINE: usize = 1 << 20;

/// A connected QMP session, past capabilities negotiation.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    events: Vec<Value>,
}

fn qmp_err(command: &str, message: impl Into<String>) -> PeerError {
    PeerError::Qmp {
        command: command.to_owned(),
        message: message.into(),
    }
}

impl Qmp {
    /// Connects to the QMP unix socket at `path` (retrying until `limit`), reads the greeting
    /// and sends `qmp_capabilities`.
    pub fn connect(path: &Path, limit: Duration) -> Result<Self, PeerError> {
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if start.elapsed() >= limit => {
                    return Err(PeerError::io(
                        format!("connecting to QMP socket {}", path.display()),
                        e,
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| PeerError::io("setting QMP read timeout", e))?;
        let writer = stream
            .try_clone()
            .map_err(|e| PeerError::io("cloning QMP socket", e))?;
        let mut qmp = Self {
            reader: BufReader::new(stream),
            writer,
            events: Vec::new(),
        };
        let greeting = qmp.read_value("greeting")?;
        if greeting.get("QMP").is_none() {
            return Err(qmp_err(
                "greeting",
                format!("not a QMP greeting: {greeting}"),
            ));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn read_value(&mut self, command: &str) -> Result<Value, PeerError> {
        let mut line = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .map_err(|e| PeerError::io(format!("reading QMP answer to {command}"), e))?;
        if n == 0 {
            return Err(qmp_err(command, "QEMU closed the QMP socket"));
        }
        if line.last() != Some(&b'\n') {
            return Err(qmp_err(command, "QMP line too long or truncated"));
        }
        serde_json::from_slice(&line).map_err(|e| {
            qmp_err(
                command,
                format!("bad JSON {e}: {}", String::from_utf8_lossy(&line)),
            )
        })
    }

    /// Sends one command and returns its `return` value. Events read meanwhile are stored.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, PeerError> {
        let mut msg = json!({ "execute": command });
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let mut text = msg.to_string();
        text.push('\n');
        tracing::debug!(%text, "QMP send");
        self.writer
            .write_all(text.as_bytes())
            .map_err(|e| PeerError::io(format!("sending QMP {command}"), e))?;
        loop {
            let v = self.read_value(command)?;
            if v.get("event").is_some() {
                self.events.push(v);
                continue;
            }
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(qmp_err(command, e.to_string()));
            }
            return Err(qmp_err(command, format!("unexpected QMP message: {v}")));
        }
    }

    /// The asynchronous events received so far (e.g. `STOP`, `RESUME`).
    pub fn events(&self) -> &[Value] {
        &self.events
    }

    /// Pauses the guest (`stop`): the screen no longer changes.
    pub fn stop(&mut self) -> Result<(), PeerError> {
        self.execute("stop", None).map(drop)
    }

    /// Resumes the guest (`cont`).
    pub fn cont(&mut self) -> Result<(), PeerError> {
        self.execute("cont", None).map(drop)
    }

    /// The run state from `query-status` (e.g. `"running"`, `"paused"`).
    pub fn status(&mut self) -> Result<String, PeerError> {
        let v = self.execute("query-status", None)?;
        v.get("status")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| qmp_err("query-status", format!("no status in {v}")))
    }

    /// Writes the current screen as a PPM (P6) file to `path` (`screendump`).
    pub fn screendump(&mut self, path: &Path) -> Result<(), PeerError> {
        let filename = path
            .to_str()
            .ok_or_else(|| qmp_err("screendump", "path is not UTF-8"))?;
        self.execute("screendump", Some(json!({ "filename": filename })))
            .map(drop)
    }

    /// Presses and releases `qcodes` together (`send-key`), e.g. `&["ctrl", "alt", "delete"]`
    /// or `&["a"]`.
    pub fn send_key(&mut self, qcodes: &[&str]) -> Result<(), PeerError> {
        let keys: Vec<Value> = qcodes
            .iter()
            .map(|k| json!({ "type": "qcode", "data": k }))
            .collect();
        self.execute("send-key", Some(json!({ "keys": keys })))
            .map(drop)
    }
}
