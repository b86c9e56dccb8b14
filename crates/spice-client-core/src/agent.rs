//! The client side of the guest agent (VDAgent, protocol.md §4.2-4.4) on top of a
//! [`Session`]'s agent data: capabilities, clipboard, monitors config, display config and
//! file transfer.
//!
//! Sans-IO like the session: pass every session event to
//! [`AgentClient::handle_session_event`] (or feed [`crate::event::Event::AgentData`] to
//! [`AgentClient::receive`] and call [`AgentClient::on_connected`] /
//! [`AgentClient::on_disconnected`] yourself), take [`AgentEvent`]s from [`AgentClient::poll_event`],
//! and call [`AgentClient::pump`] whenever the session ran (file data goes out only as the
//! server returns tokens, so at most [`AgentClient::MAX_QUEUED_CHUNKS`] chunks wait in the
//! session).
//!
//! Incoming messages are reassembled with spice-proto's [`AgentReassembler`] under a size cap;
//! a malformed or oversize message is an [`AgentError`] (the stream restarts at the next
//! message header).
//!
//! Client mouse mode through the agent needs nothing here: when the server offers client
//! mode (the agent is connected), [`Session::request_mouse_mode`] and
//! [`Session::mouse_position`] send absolute positions, which the server hands to the agent
//! as `MOUSE_STATE`.

use std::collections::{HashMap, VecDeque};

use spice_proto::agent::{
    AgentCaps, AgentMessage, AgentMessageType, AgentReassembler, AgentStreamError,
    AnnounceCapabilities, Clipboard, ClipboardGrab, ClipboardOptions, ClipboardRelease,
    ClipboardRequest, ClipboardSelection, ClipboardType, DisplayConfig, FileXferData,
    FileXferDetail, FileXferResult, FileXferStart, FileXferStatus, MonitorsConfig, ReplyError, cap,
};
use spice_proto::{DecodeError, EncodeError};

use crate::error::SessionError;
use crate::event::Event;
use crate::session::{AGENT_MAX_DATA, Session};

/// Default cap on one incoming agent message body.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 << 20;

/// File data per `FILE_XFER_DATA` message (spice-gtk sends 64 KiB).
pub const FILE_CHUNK: usize = 32 * 1024;

/// A failure of the agent layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The agent stream broke (bad protocol, oversize message).
    #[error("agent stream: {0}")]
    Stream(#[from] AgentStreamError),
    /// A complete message did not decode.
    #[error("agent message {msg_type}: {source}")]
    Decode {
        /// Its type.
        msg_type: u32,
        /// Why.
        #[source]
        source: DecodeError,
    },
    /// A message could not be encoded.
    #[error("encoding an agent message: {0}")]
    Encode(#[from] EncodeError),
    /// The session could not send (no main channel).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A file transfer id that is not in progress.
    #[error("no file transfer {0}")]
    NoTransfer(u32),
    /// The agent did not announce a capability the call needs.
    #[error("the agent lacks capability {0}")]
    MissingCap(u32),
}

/// What the agent did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentEvent {
    /// The agent announced its capabilities.
    Capabilities(AgentCaps),
    /// The agent owns `selection` with data of these types.
    ClipboardGrab {
        /// The selection.
        selection: ClipboardSelection,
        /// The types offered.
        types: Vec<ClipboardType>,
    },
    /// The agent asks for the client's clipboard data (answer with
    /// [`AgentClient::clipboard_data`]).
    ClipboardRequest {
        /// The selection.
        selection: ClipboardSelection,
        /// The type wanted.
        data_type: ClipboardType,
    },
    /// Clipboard data from the agent (answer to [`AgentClient::clipboard_request`]).
    ClipboardData {
        /// The selection.
        selection: ClipboardSelection,
        /// Its type ([`ClipboardType::NONE`]: the agent had nothing).
        data_type: ClipboardType,
        /// The data.
        data: Vec<u8>,
    },
    /// The agent released `selection`.
    ClipboardRelease {
        /// The selection.
        selection: ClipboardSelection,
    },
    /// The agent answered a request (`MONITORS_CONFIG`, `DISPLAY_CONFIG`).
    Reply {
        /// The request's type.
        msg_type: AgentMessageType,
        /// True on `SUCCESS`.
        success: bool,
    },
    /// A file transfer changed state. `CAN_SEND_DATA` starts the data (internally);
    /// every other result ends the transfer.
    FileXferStatus {
        /// The transfer id.
        id: u32,
        /// The result.
        result: FileXferResult,
        /// Free space the agent reported with `NOT_ENOUGH_SPACE`.
        free_space: Option<u64>,
    },
    /// Any other message (type only).
    Other {
        /// Its type.
        msg_type: AgentMessageType,
    },
}

#[derive(Debug)]
struct Transfer {
    data: Vec<u8>,
    sent: usize,
    /// The agent said `CAN_SEND_DATA`.
    sending: bool,
}

/// The client's agent state. See the module docs.
#[derive(Debug)]
pub struct AgentClient {
    caps: AgentCaps,
    peer_caps: Option<AgentCaps>,
    reasm: AgentReassembler,
    events: VecDeque<AgentEvent>,
    transfers: HashMap<u32, Transfer>,
    next_xfer_id: u32,
    grab_serial: u32,
    scratch: Vec<u8>,
}

impl Default for AgentClient {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE_SIZE)
    }
}

impl AgentClient {
    /// Largest number of `AGENT_DATA` chunks [`AgentClient::pump`] leaves queued in the
    /// session (waiting for server tokens).
    pub const MAX_QUEUED_CHUNKS: usize = 64;

    /// An agent client accepting incoming messages of at most `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        Self {
            caps: AgentCaps::with(&[
                cap::MOUSE_STATE,
                cap::MONITORS_CONFIG,
                cap::REPLY,
                cap::DISPLAY_CONFIG,
                cap::CLIPBOARD_BY_DEMAND,
                cap::CLIPBOARD_SELECTION,
                cap::MONITORS_CONFIG_POSITION,
                cap::FILE_XFER_DETAILED_ERRORS,
                cap::CLIPBOARD_NO_RELEASE_ON_REGRAB,
                cap::CLIPBOARD_GRAB_SERIAL,
            ]),
            peer_caps: None,
            reasm: AgentReassembler::new(max_message_size),
            events: VecDeque::new(),
            transfers: HashMap::new(),
            next_xfer_id: 1,
            grab_serial: 0,
            scratch: Vec::new(),
        }
    }

    /// Our capabilities (announced by [`AgentClient::on_connected`]).
    pub fn caps(&self) -> &AgentCaps {
        &self.caps
    }

    /// The agent's capabilities, once announced.
    pub fn peer_caps(&self) -> Option<&AgentCaps> {
        self.peer_caps.as_ref()
    }

    /// The clipboard prefixes in use (both ends' caps).
    pub fn clipboard_options(&self) -> ClipboardOptions {
        self.peer_caps
            .as_ref()
            .map(|p| ClipboardOptions::negotiated(&self.caps, p))
            .unwrap_or_default()
    }

    /// Next event, if any.
    pub fn poll_event(&mut self) -> Option<AgentEvent> {
        self.events.pop_front()
    }

    fn send(&mut self, session: &mut Session, msg: &AgentMessage<'_>) -> Result<(), AgentError> {
        self.scratch.clear();
        msg.encode(0, &mut self.scratch)?;
        session.send_agent_data(&self.scratch)?;
        Ok(())
    }

    /// Handles the session events that concern the agent (`MAIN_INIT` with an agent,
    /// `AGENT_CONNECTED`, `AGENT_DISCONNECTED`, agent data); other events are ignored.
    /// Returns true when the event was the agent's.
    pub fn handle_session_event(
        &mut self,
        session: &mut Session,
        event: &Event,
    ) -> Result<bool, AgentError> {
        match event {
            Event::MainInit {
                agent_connected: true,
                ..
            }
            | Event::AgentConnected => self.on_connected(session)?,
            Event::AgentDisconnected { .. } => self.on_disconnected(),
            Event::AgentData(d) => self.receive(d)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The agent connected (`Event::AgentConnected`, or `MAIN_INIT` said so): announces our
    /// capabilities, asking for the agent's.
    pub fn on_connected(&mut self, session: &mut Session) -> Result<(), AgentError> {
        self.reasm.reset();
        let caps = self.caps.clone();
        self.send(
            session,
            &AgentMessage::AnnounceCapabilities(AnnounceCapabilities { request: 1, caps }),
        )
    }

    /// The agent went away: transfers fail, state is dropped.
    pub fn on_disconnected(&mut self) {
        self.reasm.reset();
        self.peer_caps = None;
        let mut ids: Vec<u32> = self.transfers.keys().copied().collect();
        ids.sort_unstable();
        self.transfers.clear();
        for id in ids {
            self.events.push_back(AgentEvent::FileXferStatus {
                id,
                result: FileXferResult::VDAGENT_NOT_CONNECTED,
                free_space: None,
            });
        }
    }

    /// Feeds one `AGENT_DATA` body from the server. Complete messages become events; a broken
    /// stream or a bad message is an error (the data after it is still processed).
    pub fn receive(&mut self, mut data: &[u8]) -> Result<(), AgentError> {
        let mut first_err = None;
        while !data.is_empty() {
            let opts = self.clipboard_options();
            match self.reasm.push(&mut data) {
                Ok(Some(m)) => {
                    let msg_type = m.header.msg_type;
                    match m.decode(opts) {
                        Ok(msg) => {
                            let ev = to_event(msg);
                            if let AgentEvent::Capabilities(c) = &ev {
                                self.peer_caps = Some(c.clone());
                            }
                            self.note_status(&ev);
                            self.events.push_back(ev);
                        }
                        Err(source) => {
                            first_err.get_or_insert(AgentError::Decode {
                                msg_type: msg_type.0,
                                source,
                            });
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    // Out of step: the rest of this chunk is dropped.
                    first_err.get_or_insert(e.into());
                    break;
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn note_status(&mut self, ev: &AgentEvent) {
        if let AgentEvent::FileXferStatus { id, result, .. } = ev {
            if *result == FileXferResult::CAN_SEND_DATA {
                if let Some(t) = self.transfers.get_mut(id) {
                    t.sending = true;
                }
            } else {
                self.transfers.remove(id);
            }
        }
    }

    /// Announces that the client owns `selection` with data of `types`.
    pub fn clipboard_grab(
        &mut self,
        session: &mut Session,
        selection: ClipboardSelection,
        types: &[ClipboardType],
    ) -> Result<(), AgentError> {
        let opts = self.clipboard_options();
        self.grab_serial = self.grab_serial.wrapping_add(1);
        let msg = AgentMessage::ClipboardGrab(ClipboardGrab {
            selection: opts.selection.then_some(selection),
            serial: opts.grab_serial.then_some(self.grab_serial),
            types: types.to_vec(),
        });
        self.send(session, &msg)
    }

    /// Asks the agent for its clipboard data (after its [`AgentEvent::ClipboardGrab`]).
    pub fn clipboard_request(
        &mut self,
        session: &mut Session,
        selection: ClipboardSelection,
        data_type: ClipboardType,
    ) -> Result<(), AgentError> {
        let opts = self.clipboard_options();
        self.send(
            session,
            &AgentMessage::ClipboardRequest(ClipboardRequest {
                selection: opts.selection.then_some(selection),
                data_type,
            }),
        )
    }

    /// Sends clipboard data (answer to [`AgentEvent::ClipboardRequest`]).
    pub fn clipboard_data(
        &mut self,
        session: &mut Session,
        selection: ClipboardSelection,
        data_type: ClipboardType,
        data: &[u8],
    ) -> Result<(), AgentError> {
        let opts = self.clipboard_options();
        self.send(
            session,
            &AgentMessage::Clipboard(Clipboard {
                selection: opts.selection.then_some(selection),
                data_type,
                data,
            }),
        )
    }

    /// The client no longer owns `selection`.
    pub fn clipboard_release(
        &mut self,
        session: &mut Session,
        selection: ClipboardSelection,
    ) -> Result<(), AgentError> {
        let opts = self.clipboard_options();
        self.send(
            session,
            &AgentMessage::ClipboardRelease(ClipboardRelease {
                selection: opts.selection.then_some(selection),
            }),
        )
    }

    /// Asks the agent for a monitors layout (answered by [`AgentEvent::Reply`]).
    pub fn monitors_config(
        &mut self,
        session: &mut Session,
        config: &MonitorsConfig,
    ) -> Result<(), AgentError> {
        if self
            .peer_caps
            .as_ref()
            .is_some_and(|c| !c.has(cap::MONITORS_CONFIG))
        {
            return Err(AgentError::MissingCap(cap::MONITORS_CONFIG));
        }
        self.send(session, &AgentMessage::MonitorsConfig(config.clone()))
    }

    /// Display settings for the guest (wallpaper, font smoothing, animation, depth).
    pub fn display_config(
        &mut self,
        session: &mut Session,
        config: DisplayConfig,
    ) -> Result<(), AgentError> {
        self.send(session, &AgentMessage::DisplayConfig(config))
    }

    /// Starts sending a file: returns its transfer id. Data flows once the agent answers
    /// `CAN_SEND_DATA`, as [`AgentClient::pump`] is called; the end comes as an
    /// [`AgentEvent::FileXferStatus`].
    pub fn file_transfer_start(
        &mut self,
        session: &mut Session,
        name: &str,
        data: Vec<u8>,
    ) -> Result<u32, AgentError> {
        let id = self.next_xfer_id;
        self.next_xfer_id = self.next_xfer_id.wrapping_add(1).max(1);
        let name: String = name.chars().filter(|c| *c != '\n' && *c != '\r').collect();
        let keyfile = format!("[vdagent-file-xfer]\nname={name}\nsize={}\n", data.len());
        let mut bytes = keyfile.into_bytes();
        bytes.push(0);
        self.send(
            session,
            &AgentMessage::FileXferStart(FileXferStart { id, data: &bytes }),
        )?;
        self.transfers.insert(
            id,
            Transfer {
                data,
                sent: 0,
                sending: false,
            },
        );
        Ok(id)
    }

    /// Cancels a transfer (tells the agent).
    pub fn file_transfer_cancel(
        &mut self,
        session: &mut Session,
        id: u32,
    ) -> Result<(), AgentError> {
        if self.transfers.remove(&id).is_none() {
            return Err(AgentError::NoTransfer(id));
        }
        self.send(
            session,
            &AgentMessage::FileXferStatus(FileXferStatus {
                id,
                result: FileXferResult::CANCELLED,
                detail: FileXferDetail::None,
            }),
        )
    }

    /// Bytes of transfer `id` handed to the session so far, and its size.
    pub fn file_transfer_progress(&self, id: u32) -> Option<(usize, usize)> {
        self.transfers.get(&id).map(|t| (t.sent, t.data.len()))
    }

    /// Queues file data while fewer than [`AgentClient::MAX_QUEUED_CHUNKS`] chunks wait in
    /// the session; call after every session step.
    pub fn pump(&mut self, session: &mut Session) -> Result<(), AgentError> {
        let mut ids: Vec<u32> = self
            .transfers
            .iter()
            .filter(|(_, t)| t.sending && t.sent < t.data.len())
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        let per_message = FILE_CHUNK.div_ceil(AGENT_MAX_DATA) + 1;
        for id in ids {
            loop {
                if session.agent_queued() + per_message > Self::MAX_QUEUED_CHUNKS {
                    return Ok(());
                }
                let Some(t) = self.transfers.get_mut(&id) else {
                    break;
                };
                if t.sent >= t.data.len() {
                    break;
                }
                let end = (t.sent + FILE_CHUNK).min(t.data.len());
                let mut bytes = std::mem::take(&mut self.scratch);
                bytes.clear();
                let r = AgentMessage::FileXferData(FileXferData {
                    id,
                    data: &t.data[t.sent..end],
                })
                .encode(0, &mut bytes);
                t.sent = end;
                let sent = r
                    .map_err(AgentError::from)
                    .and_then(|()| session.send_agent_data(&bytes).map_err(AgentError::from));
                self.scratch = bytes;
                sent?;
            }
        }
        Ok(())
    }
}

fn to_event(msg: AgentMessage<'_>) -> AgentEvent {
    let sel = |s: Option<ClipboardSelection>| s.unwrap_or(ClipboardSelection::CLIPBOARD);
    match msg {
        AgentMessage::AnnounceCapabilities(a) => AgentEvent::Capabilities(a.caps),
        AgentMessage::ClipboardGrab(g) => AgentEvent::ClipboardGrab {
            selection: sel(g.selection),
            types: g.types,
        },
        AgentMessage::ClipboardRequest(r) => AgentEvent::ClipboardRequest {
            selection: sel(r.selection),
            data_type: r.data_type,
        },
        AgentMessage::Clipboard(c) => AgentEvent::ClipboardData {
            selection: sel(c.selection),
            data_type: c.data_type,
            data: c.data.to_vec(),
        },
        AgentMessage::ClipboardRelease(r) => AgentEvent::ClipboardRelease {
            selection: sel(r.selection),
        },
        AgentMessage::Reply(r) => AgentEvent::Reply {
            msg_type: r.msg_type,
            success: r.error == ReplyError::SUCCESS,
        },
        AgentMessage::FileXferStatus(s) => AgentEvent::FileXferStatus {
            id: s.id,
            result: s.result,
            free_space: match s.detail {
                FileXferDetail::NotEnoughSpace { disk_free_space } => Some(disk_free_space),
                _ => None,
            },
        },
        other => AgentEvent::Other {
            msg_type: other.msg_type(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spice_proto::agent::{AgentHeader, Reply};

    fn encoded(msg: &AgentMessage<'_>) -> Vec<u8> {
        let mut v = Vec::new();
        msg.encode(0, &mut v).unwrap();
        v
    }

    #[test]
    fn reassembles_across_chunks_and_negotiates_selection() {
        let mut a = AgentClient::default();
        let caps = encoded(&AgentMessage::AnnounceCapabilities(AnnounceCapabilities {
            request: 0,
            caps: AgentCaps::with(&[cap::CLIPBOARD_BY_DEMAND, cap::CLIPBOARD_SELECTION]),
        }));
        a.receive(&caps).unwrap();
        assert!(a.clipboard_options().selection);
        assert!(!a.clipboard_options().grab_serial);
        let text = vec![b'x'; 5000];
        let clip = encoded(&AgentMessage::Clipboard(Clipboard {
            selection: Some(ClipboardSelection::PRIMARY),
            data_type: ClipboardType::UTF8_TEXT,
            data: &text,
        }));
        for piece in clip.chunks(AGENT_MAX_DATA) {
            a.receive(piece).unwrap();
        }
        assert!(matches!(a.poll_event(), Some(AgentEvent::Capabilities(_))));
        assert_eq!(
            a.poll_event(),
            Some(AgentEvent::ClipboardData {
                selection: ClipboardSelection::PRIMARY,
                data_type: ClipboardType::UTF8_TEXT,
                data: text,
            })
        );
        assert_eq!(a.poll_event(), None);
    }

    #[test]
    fn oversize_and_bad_protocol_are_errors_then_stream_recovers() {
        let mut a = AgentClient::new(100);
        let big = encoded(&AgentMessage::Clipboard(Clipboard {
            selection: None,
            data_type: ClipboardType::UTF8_TEXT,
            data: &[0; 200],
        }));
        assert!(matches!(
            a.receive(&big[..AgentHeader::SIZE]),
            Err(AgentError::Stream(AgentStreamError::MessageTooLarge {
                size: 204,
                max: 100
            }))
        ));
        let mut bad = encoded(&AgentMessage::ClipboardRelease(ClipboardRelease {
            selection: None,
        }));
        bad[0] = 9;
        assert!(matches!(
            a.receive(&bad),
            Err(AgentError::Stream(AgentStreamError::BadProtocol {
                protocol: 9
            }))
        ));
        let reply = encoded(&AgentMessage::Reply(Reply {
            msg_type: AgentMessageType::MONITORS_CONFIG,
            error: ReplyError::SUCCESS,
        }));
        a.receive(&reply).unwrap();
        assert_eq!(
            a.poll_event(),
            Some(AgentEvent::Reply {
                msg_type: AgentMessageType::MONITORS_CONFIG,
                success: true
            })
        );
    }

    #[test]
    fn undecodable_body_is_an_error_and_later_messages_still_come() {
        let mut a = AgentClient::default();
        // a grab whose type list is not a multiple of 4 bytes
        let mut bad = Vec::new();
        for x in [1u32, 7, 0, 0, 3] {
            bad.extend_from_slice(&x.to_le_bytes());
        }
        bad.extend_from_slice(&[1, 2, 3]);
        let ok = encoded(&AgentMessage::ClipboardRelease(ClipboardRelease {
            selection: None,
        }));
        bad.extend_from_slice(&ok);
        assert!(matches!(
            a.receive(&bad),
            Err(AgentError::Decode { msg_type: 7, .. })
        ));
        assert_eq!(
            a.poll_event(),
            Some(AgentEvent::ClipboardRelease {
                selection: ClipboardSelection::CLIPBOARD
            })
        );
    }

    #[test]
    fn disconnect_fails_transfers() {
        let mut a = AgentClient::default();
        a.transfers.insert(
            3,
            Transfer {
                data: vec![1, 2, 3],
                sent: 0,
                sending: true,
            },
        );
        a.on_disconnected();
        assert_eq!(
            a.poll_event(),
            Some(AgentEvent::FileXferStatus {
                id: 3,
                result: FileXferResult::VDAGENT_NOT_CONNECTED,
                free_space: None
            })
        );
        assert_eq!(a.file_transfer_progress(3), None);
    }
}
