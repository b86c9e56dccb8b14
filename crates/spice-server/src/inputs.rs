//! The inputs channel: keyboard scancodes and lock keys, mouse in server mode (relative,
//! to [`crate::host::Mouse`]) and client mode (absolute, to [`crate::host::Tablet`]),
//! delivered to the host traits in the order the client sent them. A `MOUSE_MOTION_ACK`
//! goes back every [`MOTION_ACK_BUNCH`] motion or position messages.

use std::sync::{Arc, Weak};
use std::time::Instant;

use spice_proto::caps::{self, Caps};
use spice_proto::inputs::{
    ClientMessage, KeyboardModifiers, MOTION_ACK_BUNCH, MouseButton, MouseButtonMask,
    ServerMessage, scancode_bytes,
};
use spice_proto::link::LinkErr;
use spice_proto::main::MouseMode;
use spice_proto::{ChannelType, messages};

use crate::channel::{ChannelError, ChannelFactory, ChannelHandler, OpenContext, Outbox};
use crate::server::ServerContext;
use crate::session::Session;

/// Set-1 make codes of the lock keys (scroll, num, caps) with their LED bit.
const LOCK_KEYS: [(KeyboardModifiers, u8); 3] = [
    (KeyboardModifiers::SCROLL_LOCK, 0x46),
    (KeyboardModifiers::NUM_LOCK, 0x45),
    (KeyboardModifiers::CAPS_LOCK, 0x3a),
];

/// Creates [`InputsChannel`]s (built into every server).
#[derive(Debug)]
pub struct InputsChannelFactory {
    ctx: Weak<ServerContext>,
}

impl InputsChannelFactory {
    /// A factory over the server's context.
    pub fn new(ctx: Weak<ServerContext>) -> Self {
        Self { ctx }
    }
}

impl ChannelFactory for InputsChannelFactory {
    fn channel_type(&self) -> ChannelType {
        ChannelType::INPUTS
    }
    fn channel_id(&self) -> u8 {
        0
    }
    fn caps(&self) -> Caps {
        Caps::from_caps(&[caps::inputs::KEY_SCANCODE])
    }
    fn open(&self, ctx: OpenContext<'_>) -> Result<Box<dyn ChannelHandler>, LinkErr> {
        let server = self.ctx.upgrade().ok_or(LinkErr::ERROR)?;
        server.add_inputs_waker(ctx.waker.clone());
        Ok(Box::new(InputsChannel {
            server,
            session: ctx.session.clone(),
            motions: 0,
            leds_sent: None,
        }))
    }
}

/// The inputs channel of one client.
pub struct InputsChannel {
    server: Arc<ServerContext>,
    session: Arc<Session>,
    motions: u32,
    leds_sent: Option<KeyboardModifiers>,
}

impl std::fmt::Debug for InputsChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputsChannel")
            .field("session", &self.session.id())
            .finish_non_exhaustive()
    }
}

impl InputsChannel {
    fn leds(&self) -> KeyboardModifiers {
        self.server
            .host()
            .keyboard
            .as_ref()
            .map_or(KeyboardModifiers::empty(), |k| k.leds())
    }

    fn push_scancodes(&self, bytes: impl Iterator<Item = u8>) {
        match &self.server.host().keyboard {
            Some(k) => bytes.for_each(|b| k.push_scancode(b)),
            None => tracing::trace!("key dropped: no keyboard"),
        }
    }

    fn motion_ack(&mut self, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        self.motions += 1;
        if self.motions % MOTION_ACK_BUNCH == 0 {
            out.send(&ServerMessage::MouseMotionAck)?;
        }
        Ok(())
    }

    fn client_mode(&self) -> bool {
        self.session.mouse_mode() == MouseMode::CLIENT
    }

    fn button(&self, button: MouseButton, buttons: MouseButtonMask, press: bool) {
        let host = self.server.host();
        let dz = match (press, button) {
            (true, MouseButton::UP) => -1,
            (true, MouseButton::DOWN) => 1,
            _ => 0,
        };
        if self.client_mode() && self.server.agent_mouse().is_some() {
            if let Some(a) = self.server.agent_mouse() {
                a.mouse_buttons(buttons);
            }
        } else if self.client_mode() {
            if let Some(t) = &host.tablet {
                if dz != 0 {
                    t.wheel(dz, buttons);
                } else {
                    t.buttons(buttons);
                }
            }
        } else if let Some(m) = &host.mouse {
            if dz != 0 {
                m.motion(0, 0, dz, buttons);
            } else {
                m.buttons(buttons);
            }
        }
    }
}

impl ChannelHandler for InputsChannel {
    fn on_connect(&mut self, _now: Instant, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        let leds = self.leds();
        self.leds_sent = Some(leds);
        out.send(&ServerMessage::Init {
            keyboard_modifiers: leds,
        })
    }

    fn handle_message(
        &mut self,
        msg: &messages::ClientMessage<'_>,
        _now: Instant,
        out: &mut Outbox<'_>,
    ) -> Result<(), ChannelError> {
        let messages::ClientMessage::Inputs(msg) = msg else {
            return Err(ChannelError::Protocol {
                channel: ChannelType::INPUTS,
                what: format!("{} is not an inputs message", msg.name()),
            });
        };
        let host = self.server.host();
        match msg {
            ClientMessage::KeyDown { code } | ClientMessage::KeyUp { code } => {
                self.push_scancodes(scancode_bytes(*code));
            }
            ClientMessage::KeyScancode(bytes) => self.push_scancodes(bytes.iter().copied()),
            ClientMessage::KeyModifiers { modifiers } => {
                // Toggle the lock keys whose state differs, as spice-server does.
                let current = self.leds();
                for (flag, make) in LOCK_KEYS {
                    if modifiers.contains(flag) != current.contains(flag) {
                        self.push_scancodes([make, make | 0x80].into_iter());
                    }
                }
            }
            ClientMessage::MouseMotion {
                dx,
                dy,
                buttons_state,
            } => {
                if !self.client_mode() {
                    if let Some(m) = &host.mouse {
                        m.motion(*dx, *dy, 0, *buttons_state);
                    }
                }
                self.motion_ack(out)?;
            }
            ClientMessage::MousePosition {
                x,
                y,
                buttons_state,
                display_id,
            } => {
                if self.client_mode() {
                    if let Some(a) = self.server.agent_mouse() {
                        a.mouse_position(*x, *y, *buttons_state, *display_id);
                    } else if let Some(t) = &host.tablet {
                        t.position(*x, *y, *buttons_state, *display_id);
                    }
                }
                self.motion_ack(out)?;
            }
            ClientMessage::MousePress {
                button,
                buttons_state,
            } => self.button(*button, *buttons_state, true),
            ClientMessage::MouseRelease {
                button,
                buttons_state,
            } => self.button(*button, *buttons_state, false),
            _ => tracing::debug!("inputs message ignored"),
        }
        Ok(())
    }

    fn poll(&mut self, _now: Instant, out: &mut Outbox<'_>) -> Result<(), ChannelError> {
        let leds = self.leds();
        if self.leds_sent != Some(leds) {
            self.leds_sent = Some(leds);
            out.send(&ServerMessage::KeyModifiers { modifiers: leds })?;
        }
        Ok(())
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}
