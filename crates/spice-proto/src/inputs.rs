//! Inputs channel (3): keyboard and mouse (spice.proto `InputsChannel`, protocol.md §2.4, §6).
//!
//! Key codes are PC/AT set-1 scancodes packed little-endian into a `u32`
//! ([`scancode_bytes`], [`make_scancode`]); lock-key state travels as
//! [`KeyboardModifiers`]; mouse buttons as [`MouseButton`] and [`MouseButtonMask`].

use crate::channel::ChannelType;
use crate::error::{DecodeError, EncodeError};
use crate::message::ChannelMessage;
use crate::wire::{ReadCursor, WriteBuf};

bitflags::bitflags! {
    /// `keyboard_modifier_flags` (u16): the guest's lock-key LEDs. Unknown bits are kept.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct KeyboardModifiers: u16 {
        /// Scroll Lock on.
        const SCROLL_LOCK = 1 << 0;
        /// Num Lock on.
        const NUM_LOCK = 1 << 1;
        /// Caps Lock on.
        const CAPS_LOCK = 1 << 2;
    }
}

bitflags::bitflags! {
    /// `mouse_button_mask` (u16): the buttons held down. Unknown bits are kept.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct MouseButtonMask: u16 {
        /// Left button.
        const LEFT = 1 << 0;
        /// Middle button.
        const MIDDLE = 1 << 1;
        /// Right button.
        const RIGHT = 1 << 2;
        /// Wheel up.
        const UP = 1 << 3;
        /// Wheel down.
        const DOWN = 1 << 4;
        /// Side button (spice-protocol 0.14.3).
        const SIDE = 1 << 5;
        /// Extra button (spice-protocol 0.14.3).
        const EXTRA = 1 << 6;
    }
}

/// `mouse_button` (u8): the button of a press or release. Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MouseButton(pub u8);

impl MouseButton {
    /// 0: not a button.
    pub const INVALID: Self = Self(0);
    /// 1: left.
    pub const LEFT: Self = Self(1);
    /// 2: middle.
    pub const MIDDLE: Self = Self(2);
    /// 3: right.
    pub const RIGHT: Self = Self(3);
    /// 4: wheel up.
    pub const UP: Self = Self(4);
    /// 5: wheel down.
    pub const DOWN: Self = Self(5);
    /// 6: side.
    pub const SIDE: Self = Self(6);
    /// 7: extra.
    pub const EXTRA: Self = Self(7);

    /// The matching bit of [`MouseButtonMask`], or `None` for INVALID and unknown values.
    pub fn mask(self) -> Option<MouseButtonMask> {
        match self.0 {
            1..=7 => Some(MouseButtonMask::from_bits_retain(1 << (self.0 - 1))),
            _ => None,
        }
    }
}

/// Number of motion/position messages the server acknowledges with one `MOUSE_MOTION_ACK`
/// (`SPICE_INPUT_MOTION_ACK_BUNCH`).
pub const MOTION_ACK_BUNCH: u32 = 4;

/// The scancode bytes a `KEY_DOWN`/`KEY_UP` code stands for, as spice-server feeds them to the
/// emulated keyboard: low byte first, stopping at the first zero byte.
pub fn scancode_bytes(code: u32) -> impl Iterator<Item = u8> {
    code.to_le_bytes().into_iter().take_while(|&b| b != 0)
}

/// The `u32 code` for a set-1 key: `make` is the make code (`0x1e` for A); `extended` adds
/// the `E0` prefix; `release` sets the break bit (`0x80`). E.g. Right-Ctrl down is
/// `make_scancode(0x1d, true, false) == 0x1de0`.
pub fn make_scancode(make: u8, extended: bool, release: bool) -> u32 {
    let code = u32::from(if release { make | 0x80 } else { make & 0x7f });
    if extended { 0xe0 | (code << 8) } else { code }
}

/// Server → client inputs messages. Nothing here borrows the body, so the enum itself has no
/// lifetime; use it through the [`ServerMessage`] alias like every other channel's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputsServerMessage {
    /// 101 `INIT`: the guest's lock-key state at connect.
    Init {
        /// Lock keys on.
        keyboard_modifiers: KeyboardModifiers,
    },
    /// 102 `KEY_MODIFIERS`: the guest's lock keys changed.
    KeyModifiers {
        /// Lock keys on.
        modifiers: KeyboardModifiers,
    },
    /// 111 `MOUSE_MOTION_ACK`: sent after every [`MOTION_ACK_BUNCH`] motion/position messages.
    MouseMotionAck,
}

/// Server → client inputs messages, named like every other channel's (`ServerMessage<'a>`).
pub type ServerMessage<'a> = InputsServerMessage;

impl InputsServerMessage {
    /// 101
    pub const INIT: u16 = 101;
    /// 102
    pub const KEY_MODIFIERS: u16 = 102;
    /// 111
    pub const MOUSE_MOTION_ACK: u16 = 111;
}

impl<'a> ChannelMessage<'a> for InputsServerMessage {
    fn msg_type(&self) -> u16 {
        match self {
            Self::Init { .. } => Self::INIT,
            Self::KeyModifiers { .. } => Self::KEY_MODIFIERS,
            Self::MouseMotionAck => Self::MOUSE_MOTION_ACK,
        }
    }

    fn name(&self) -> &'static str {
        Self::name_of(ChannelType::INPUTS, self.msg_type()).unwrap_or("unknown")
    }

    fn decode_body(
        _channel: ChannelType,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<Self, DecodeError> {
        let mut r = ReadCursor::new(body);
        let m = match msg_type {
            Self::INIT => Self::Init {
                keyboard_modifiers: KeyboardModifiers::from_bits_retain(
                    r.read_u16("inputs init.keyboard_modifiers")?,
                ),
            },
            Self::KEY_MODIFIERS => Self::KeyModifiers {
                modifiers: KeyboardModifiers::from_bits_retain(
                    r.read_u16("inputs key_modifiers.modifiers")?,
                ),
            },
            Self::MOUSE_MOTION_ACK => Self::MouseMotionAck,
            _ => return Err(DecodeError::UnknownMessage { msg_type }),
        };
        r.finish("inputs server message")?;
        Ok(m)
    }

    fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        match self {
            Self::Init {
                keyboard_modifiers: m,
            }
            | Self::KeyModifiers { modifiers: m } => w.write_u16(m.bits()),
            Self::MouseMotionAck => {}
        }
        Ok(())
    }

    fn name_of(_channel: ChannelType, msg_type: u16) -> Option<&'static str> {
        Some(match msg_type {
            Self::INIT => "init",
            Self::KEY_MODIFIERS => "key_modifiers",
            Self::MOUSE_MOTION_ACK => "mouse_motion_ack",
            _ => return None,
        })
    }
}

/// Client → server inputs messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientMessage<'a> {
    /// 101 `KEY_DOWN`: set-1 scancode bytes packed little-endian (see [`make_scancode`]).
    KeyDown {
        /// Packed scancode.
        code: u32,
    },
    /// 102 `KEY_UP`: as `KEY_DOWN`, with the break bit set.
    KeyUp {
        /// Packed scancode.
        code: u32,
    },
    /// 103 `KEY_MODIFIERS`: make the guest's lock keys match.
    KeyModifiers {
        /// Lock keys wanted on.
        modifiers: KeyboardModifiers,
    },
    /// 104 `KEY_SCANCODE` (`INPUTS_CAP_KEY_SCANCODE`): raw scancode bytes, all fed in order.
    KeyScancode(&'a [u8]),
    /// 111 `MOUSE_MOTION`: relative motion (server mouse mode).
    MouseMotion {
        /// Horizontal motion.
        dx: i32,
        /// Vertical motion.
        dy: i32,
        /// Buttons held.
        buttons_state: MouseButtonMask,
    },
    /// 112 `MOUSE_POSITION`: absolute position (client mouse mode).
    MousePosition {
        /// X on the display.
        x: u32,
        /// Y on the display.
        y: u32,
        /// Buttons held.
        buttons_state: MouseButtonMask,
        /// The display (monitor) the position is on.
        display_id: u8,
    },
    /// 113 `MOUSE_PRESS`.
    MousePress {
        /// The button pressed.
        button: MouseButton,
        /// Buttons held.
        buttons_state: MouseButtonMask,
    },
    /// 114 `MOUSE_RELEASE`.
    MouseRelease {
        /// The button released.
        button: MouseButton,
        /// Buttons held.
        buttons_state: MouseButtonMask,
    },
}

impl ClientMessage<'_> {
    /// 101
    pub const KEY_DOWN: u16 = 101;
    /// 102
    pub const KEY_UP: u16 = 102;
    /// 103
    pub const KEY_MODIFIERS: u16 = 103;
    /// 104
    pub const KEY_SCANCODE: u16 = 104;
    /// 111
    pub const MOUSE_MOTION: u16 = 111;
    /// 112
    pub const MOUSE_POSITION: u16 = 112;
    /// 113
    pub const MOUSE_PRESS: u16 = 113;
    /// 114
    pub const MOUSE_RELEASE: u16 = 114;
}

impl<'a> ChannelMessage<'a> for ClientMessage<'a> {
    fn msg_type(&self) -> u16 {
        match self {
            Self::KeyDown { .. } => Self::KEY_DOWN,
            Self::KeyUp { .. } => Self::KEY_UP,
            Self::KeyModifiers { .. } => Self::KEY_MODIFIERS,
            Self::KeyScancode(_) => Self::KEY_SCANCODE,
            Self::MouseMotion { .. } => Self::MOUSE_MOTION,
            Self::MousePosition { .. } => Self::MOUSE_POSITION,
            Self::MousePress { .. } => Self::MOUSE_PRESS,
            Self::MouseRelease { .. } => Self::MOUSE_RELEASE,
        }
    }

    fn name(&self) -> &'static str {
        Self::name_of(ChannelType::INPUTS, self.msg_type()).unwrap_or("unknown")
    }

    fn decode_body(
        _channel: ChannelType,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<Self, DecodeError> {
        let mut r = ReadCursor::new(body);
        let m = match msg_type {
            Self::KEY_DOWN => Self::KeyDown {
                code: r.read_u32("inputs key_down.code")?,
            },
            Self::KEY_UP => Self::KeyUp {
                code: r.read_u32("inputs key_up.code")?,
            },
            Self::KEY_MODIFIERS => Self::KeyModifiers {
                modifiers: KeyboardModifiers::from_bits_retain(
                    r.read_u16("inputs key_modifiers.modifiers")?,
                ),
            },
            Self::KEY_SCANCODE => Self::KeyScancode(r.read_rest()),
            Self::MOUSE_MOTION => {
                // i32 dx + i32 dy + u16 buttons_state
                r.ensure(4 + 4 + 2, "inputs mouse_motion")?;
                Self::MouseMotion {
                    dx: r.read_i32("inputs mouse_motion.dx")?,
                    dy: r.read_i32("inputs mouse_motion.dy")?,
                    buttons_state: MouseButtonMask::from_bits_retain(
                        r.read_u16("inputs mouse_motion.buttons_state")?,
                    ),
                }
            }
            Self::MOUSE_POSITION => {
                // u32 x + u32 y + u16 buttons_state + u8 display_id
                r.ensure(4 + 4 + 2 + 1, "inputs mouse_position")?;
                Self::MousePosition {
                    x: r.read_u32("inputs mouse_position.x")?,
                    y: r.read_u32("inputs mouse_position.y")?,
                    buttons_state: MouseButtonMask::from_bits_retain(
                        r.read_u16("inputs mouse_position.buttons_state")?,
                    ),
                    display_id: r.read_u8("inputs mouse_position.display_id")?,
                }
            }
            Self::MOUSE_PRESS | Self::MOUSE_RELEASE => {
                // u8 button + u16 buttons_state
                r.ensure(1 + 2, "inputs mouse_press/release")?;
                let button = MouseButton(r.read_u8("inputs mouse button")?);
                let buttons_state =
                    MouseButtonMask::from_bits_retain(r.read_u16("inputs mouse buttons_state")?);
                if msg_type == Self::MOUSE_PRESS {
                    Self::MousePress {
                        button,
                        buttons_state,
                    }
                } else {
                    Self::MouseRelease {
                        button,
                        buttons_state,
                    }
                }
            }
            _ => return Err(DecodeError::UnknownMessage { msg_type }),
        };
        r.finish("inputs client message")?;
        Ok(m)
    }

    fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        match self {
            Self::KeyDown { code } | Self::KeyUp { code } => w.write_u32(*code),
            Self::KeyModifiers { modifiers } => w.write_u16(modifiers.bits()),
            Self::KeyScancode(bytes) => w.write_slice(bytes),
            Self::MouseMotion {
                dx,
                dy,
                buttons_state,
            } => {
                w.write_i32(*dx);
                w.write_i32(*dy);
                w.write_u16(buttons_state.bits());
            }
            Self::MousePosition {
                x,
                y,
                buttons_state,
                display_id,
            } => {
                w.write_u32(*x);
                w.write_u32(*y);
                w.write_u16(buttons_state.bits());
                w.write_u8(*display_id);
            }
            Self::MousePress {
                button,
                buttons_state,
            }
            | Self::MouseRelease {
                button,
                buttons_state,
            } => {
                w.write_u8(button.0);
                w.write_u16(buttons_state.bits());
            }
        }
        Ok(())
    }

    fn name_of(_channel: ChannelType, msg_type: u16) -> Option<&'static str> {
        Some(match msg_type {
            Self::KEY_DOWN => "key_down",
            Self::KEY_UP => "key_up",
            Self::KEY_MODIFIERS => "key_modifiers",
            Self::KEY_SCANCODE => "key_scancode",
            Self::MOUSE_MOTION => "mouse_motion",
            Self::MOUSE_POSITION => "mouse_position",
            Self::MOUSE_PRESS => "mouse_press",
            Self::MOUSE_RELEASE => "mouse_release",
            _ => return None,
        })
    }
}

/// Fuzz entry: `data` = message type (u16 LE) + body of a server inputs message. Panics only
/// when a decoded message fails to round-trip.
#[doc(hidden)]
pub fn fuzz_server(data: &[u8]) {
    crate::message::fuzz_roundtrip!(InputsServerMessage, ChannelType::INPUTS, data);
}

/// Fuzz entry: `data` = message type (u16 LE) + body of a client inputs message.
#[doc(hidden)]
pub fn fuzz_client(data: &[u8]) {
    crate::message::fuzz_roundtrip!(ClientMessage, ChannelType::INPUTS, data);
}

/// proptest strategies covering every message of both directions.
#[cfg(feature = "proptest")]
pub mod strategies {
    use super::*;
    use proptest::prelude::*;

    fn modifiers() -> impl Strategy<Value = KeyboardModifiers> {
        any::<u16>().prop_map(KeyboardModifiers::from_bits_retain)
    }

    fn buttons() -> impl Strategy<Value = MouseButtonMask> {
        any::<u16>().prop_map(MouseButtonMask::from_bits_retain)
    }

    /// Every server inputs message.
    pub fn server_message() -> BoxedStrategy<ServerMessage<'static>> {
        prop_oneof![
            modifiers().prop_map(|keyboard_modifiers| ServerMessage::Init { keyboard_modifiers }),
            modifiers().prop_map(|modifiers| ServerMessage::KeyModifiers { modifiers }),
            Just(ServerMessage::MouseMotionAck),
        ]
        .boxed()
    }

    /// Every client inputs message.
    pub fn client_message() -> BoxedStrategy<ClientMessage<'static>> {
        prop_oneof![
            any::<u32>().prop_map(|code| ClientMessage::KeyDown { code }),
            any::<u32>().prop_map(|code| ClientMessage::KeyUp { code }),
            modifiers().prop_map(|modifiers| ClientMessage::KeyModifiers { modifiers }),
            crate::message::strategies::leaked_bytes(0..16).prop_map(ClientMessage::KeyScancode),
            (any::<i32>(), any::<i32>(), buttons()).prop_map(|(dx, dy, buttons_state)| {
                ClientMessage::MouseMotion {
                    dx,
                    dy,
                    buttons_state,
                }
            }),
            (any::<u32>(), any::<u32>(), buttons(), any::<u8>()).prop_map(
                |(x, y, buttons_state, display_id)| {
                    ClientMessage::MousePosition {
                        x,
                        y,
                        buttons_state,
                        display_id,
                    }
                }
            ),
            (any::<u8>(), buttons()).prop_map(|(b, buttons_state)| ClientMessage::MousePress {
                button: MouseButton(b),
                buttons_state
            }),
            (any::<u8>(), buttons()).prop_map(|(b, buttons_state)| ClientMessage::MouseRelease {
                button: MouseButton(b),
                buttons_state
            }),
        ]
        .boxed()
    }
}
