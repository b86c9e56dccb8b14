//! Any message of any channel: decode and encode given the channel and the direction.
//!
//! Message types below 101 are the base messages every channel shares ([`crate::base`]);
//! from 101 on the channel's own module decides. Errors name the channel, the direction and
//! the message.

use crate::base;
use crate::channel::{ChannelType, Direction};
use crate::error::{DecodeError, EncodeError, MessageError};
use crate::message::ChannelMessage;
use crate::wire::WriteBuf;
use crate::{cursor, display, inputs, main, playback, record, smartcard, spicevmc};

/// First channel-specific message number; lower numbers are base messages.
pub const FIRST_CHANNEL_MESSAGE: u16 = 101;

macro_rules! dispatch_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $dir:expr, $base:ty;
        $( $variant:ident ( $ty:ty ) => $chan:pat ),* $(,)?
    ) => {
        $(#[$meta])*
        // Display messages are large (draw operations carry their descriptors inline); boxing
        // them would cost an allocation per message on the hot path, so the size is accepted.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum $name<'a> {
            /// A base message (type < 101), shared by every channel.
            Base($base),
            $(
                #[doc = concat!("A `", stringify!($variant), "` channel message.")]
                $variant($ty),
            )*
        }

        impl<'a> $name<'a> {
            /// Decodes one message body of type `msg_type` received on `channel`.
            pub fn decode(channel: ChannelType, msg_type: u16, body: &'a [u8]) -> Result<Self, MessageError> {
                let wrap = |source: DecodeError| MessageError {
                    channel,
                    direction: $dir,
                    msg_type,
                    name: Self::name_of(channel, msg_type).unwrap_or("unknown"),
                    source,
                };
                if msg_type < FIRST_CHANNEL_MESSAGE {
                    if channel == ChannelType::TUNNEL {
                        return Err(wrap(DecodeError::UnknownMessage { msg_type }));
                    }
                    return <$base>::decode_body(channel, msg_type, body).map(Self::Base).map_err(wrap);
                }
                match channel {
                    $( $chan => <$ty>::decode_body(channel, msg_type, body).map(Self::$variant).map_err(wrap), )*
                    #[allow(unreachable_patterns)]
                    _ => Err(wrap(DecodeError::UnknownMessage { msg_type })),
                }
            }

            /// The name of message `msg_type` on `channel` in this direction, if defined.
            pub fn name_of(channel: ChannelType, msg_type: u16) -> Option<&'static str> {
                if msg_type < FIRST_CHANNEL_MESSAGE {
                    return if channel == ChannelType::TUNNEL { None } else { <$base>::name_of(channel, msg_type) };
                }
                match channel {
                    $( $chan => <$ty>::name_of(channel, msg_type), )*
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }

            /// The message type number for the data header.
            pub fn msg_type(&self) -> u16 {
                match self {
                    Self::Base(m) => m.msg_type(),
                    $( Self::$variant(m) => m.msg_type(), )*
                }
            }

            /// The message name as spice.proto spells it.
            pub fn name(&self) -> &'static str {
                match self {
                    Self::Base(m) => m.name(),
                    $( Self::$variant(m) => m.name(), )*
                }
            }

            /// True when this message may be sent on `channel`.
            pub fn fits_channel(&self, channel: ChannelType) -> bool {
                match self {
                    Self::Base(_) => channel != ChannelType::TUNNEL,
                    $( Self::$variant(m) => matches!(channel, $chan) && Self::name_of(channel, m.msg_type()).is_some(), )*
                }
            }

            /// Appends the message body (no data header) to `w`.
            pub fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
                match self {
                    Self::Base(m) => m.encode_body(w),
                    $( Self::$variant(m) => m.encode_body(w), )*
                }
            }

            /// Encodes the body into a fresh vector.
            pub fn body_to_vec(&self) -> Result<Vec<u8>, EncodeError> {
                let mut v = Vec::new();
                self.encode_body(&mut WriteBuf::new(&mut v))?;
                Ok(v)
            }
        }
    };
}

dispatch_enum! {
    /// A message sent by the server on any channel.
    ServerMessage, Direction::ServerToClient, base::ServerMessage<'a>;
    Main(main::ServerMessage<'a>) => ChannelType::MAIN,
    Display(display::ServerMessage<'a>) => ChannelType::DISPLAY,
    Inputs(inputs::ServerMessage<'a>) => ChannelType::INPUTS,
    Cursor(cursor::ServerMessage<'a>) => ChannelType::CURSOR,
    Playback(playback::ServerMessage<'a>) => ChannelType::PLAYBACK,
    Record(record::ServerMessage<'a>) => ChannelType::RECORD,
    Smartcard(smartcard::ServerMessage<'a>) => ChannelType::SMARTCARD,
    Spicevmc(spicevmc::ServerMessage<'a>) => ChannelType::USBREDIR | ChannelType::PORT | ChannelType::WEBDAV,
}

dispatch_enum! {
    /// A message sent by the client on any channel.
    ClientMessage, Direction::ClientToServer, base::ClientMessage<'a>;
    Main(main::ClientMessage<'a>) => ChannelType::MAIN,
    Display(display::ClientMessage<'a>) => ChannelType::DISPLAY,
    Inputs(inputs::ClientMessage<'a>) => ChannelType::INPUTS,
    Record(record::ClientMessage<'a>) => ChannelType::RECORD,
    Smartcard(smartcard::ClientMessage<'a>) => ChannelType::SMARTCARD,
    Spicevmc(spicevmc::ClientMessage<'a>) => ChannelType::USBREDIR | ChannelType::PORT | ChannelType::WEBDAV,
}

/// Decodes a message from `direction`'s sender, for callers that handle both sides
/// (proxies, analysers).
#[allow(clippy::large_enum_variant)] // see ServerMessage
#[derive(Debug, Clone, PartialEq)]
pub enum AnyMessage<'a> {
    /// Sent by the server.
    Server(ServerMessage<'a>),
    /// Sent by the client.
    Client(ClientMessage<'a>),
}

impl<'a> AnyMessage<'a> {
    /// Decodes one message body of `msg_type` on `channel` sent in `direction`.
    pub fn decode(
        channel: ChannelType,
        direction: Direction,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<Self, MessageError> {
        match direction {
            Direction::ServerToClient => {
                ServerMessage::decode(channel, msg_type, body).map(Self::Server)
            }
            Direction::ClientToServer => {
                ClientMessage::decode(channel, msg_type, body).map(Self::Client)
            }
        }
    }

    /// Appends the message body to `w`.
    pub fn encode_body(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        match self {
            Self::Server(m) => m.encode_body(w),
            Self::Client(m) => m.encode_body(w),
        }
    }

    /// The message name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Server(m) => m.name(),
            Self::Client(m) => m.name(),
        }
    }
}
