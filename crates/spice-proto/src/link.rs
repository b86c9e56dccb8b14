//! The link stage: the first bytes of every channel connection.
//!
//! ```text
//! client                                         server
//!   SpiceLinkHeader (16) + SpiceLinkMess (18+caps) ->
//!                 <- SpiceLinkHeader (16) + SpiceLinkReply (178+caps)
//!   auth mechanism (u32, only if the server has PROTOCOL_AUTH_SELECTION)
//!   + RSA ticket (128)                           ->
//!                                  <- link result (u32 SpiceLinkErr)
//! ```
//!
//! This module has the wire types ([`LinkHeader`], [`LinkMess`], [`LinkReply`], [`LinkErr`],
//! [`AuthMechanism`]), validation as spice-server does it (with a typed [`LinkError`] that
//! maps to the code a server must reply with), and two sans-IO state machines driven purely
//! by bytes in / bytes out: [`ClientLink`] and [`ServerLink`].
//!
//! SASL authentication is not implemented: a server configured here never offers it, and a
//! client refuses a server that offers only SASL ([`LinkError::AuthUnsupported`]).

use core::fmt;
use std::time::SystemTime;

use rand_core::{CryptoRngCore, OsRng};

use crate::caps::{self, Caps, MAX_CAP_WORDS};
use crate::channel::ChannelType;
use crate::error::{DecodeError, EncodeError};
use crate::ticket::{self, ENCRYPTED_TICKET_BYTES, PUBKEY_BYTES, TicketError, TicketKey};
use crate::wire::{Encode, ReadCursor, WriteBuf};

/// The link magic, `"REDQ"` (u32 LE `0x51444552`).
pub const MAGIC: [u8; 4] = *b"REDQ";
/// Protocol major version (`SPICE_VERSION_MAJOR`); spice-server rejects anything else.
pub const VERSION_MAJOR: u32 = 2;
/// Protocol minor version (`SPICE_VERSION_MINOR`).
pub const VERSION_MINOR: u32 = 2;
/// Smallest link message size a server accepts (`sizeof(SpiceLinkMess)`).
pub const MIN_LINK_MESS_SIZE: u32 = LinkMess::FIXED_SIZE as u32;
/// Largest link message or reply size accepted (spice-server's limit for link messages;
/// this crate's client applies it to replies too).
pub const MAX_LINK_SIZE: u32 = 4096;

/// A SpiceLinkErr value: the `error` of a link reply and the link result word.
///
/// A newtype so unknown values survive; named values as associated constants.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LinkErr(pub u32);

impl LinkErr {
    /// Success.
    pub const OK: Self = Self(0);
    /// Unspecified error.
    pub const ERROR: Self = Self(1);
    /// The link header's magic was not `REDQ`.
    pub const INVALID_MAGIC: Self = Self(2);
    /// The link message is malformed (sizes, caps, mechanism).
    pub const INVALID_DATA: Self = Self(3);
    /// Unsupported protocol major version.
    pub const VERSION_MISMATCH: Self = Self(4);
    /// The channel requires TLS.
    pub const NEED_SECURED: Self = Self(5);
    /// The channel must not use TLS.
    pub const NEED_UNSECURED: Self = Self(6);
    /// Bad or expired ticket.
    pub const PERMISSION_DENIED: Self = Self(7);
    /// A non-main channel used an unknown connection id.
    pub const BAD_CONNECTION_ID: Self = Self(8);
    /// The requested channel does not exist.
    pub const CHANNEL_NOT_AVAILABLE: Self = Self(9);

    /// The upstream name (`"PERMISSION_DENIED"`), or `"unknown"`.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "OK",
            1 => "ERROR",
            2 => "INVALID_MAGIC",
            3 => "INVALID_DATA",
            4 => "VERSION_MISMATCH",
            5 => "NEED_SECURED",
            6 => "NEED_UNSECURED",
            7 => "PERMISSION_DENIED",
            8 => "BAD_CONNECTION_ID",
            9 => "CHANNEL_NOT_AVAILABLE",
            _ => "unknown",
        }
    }

    /// True for [`LinkErr::OK`].
    pub fn is_ok(self) -> bool {
        self == Self::OK
    }
}

impl fmt::Debug for LinkErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkErr({}={})", self.0, self.name())
    }
}

impl fmt::Display for LinkErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// The auth mechanism word (`SpiceLinkAuthMechanism`): the common cap number of the chosen
/// mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthMechanism(pub u32);

impl AuthMechanism {
    /// RSA ticket.
    pub const SPICE: Self = Self(caps::common::AUTH_SPICE);
    /// SASL.
    pub const SASL: Self = Self(caps::common::AUTH_SASL);
}

/// Why a server refused a ticket (all are answered with `PERMISSION_DENIED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TicketRejection {
    /// The 128 bytes did not decrypt under this link's key.
    Undecryptable,
    /// Ticketing is on but no password is set (spice-server refuses everyone then).
    NoPasswordSet,
    /// The password has expired.
    Expired,
    /// The password does not match.
    WrongPassword,
}

/// A link-stage failure. [`LinkError::link_err`] gives the code a server replies with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// Server side: the first four bytes are not `REDQ`. Nothing was queued; the caller may
    /// try another protocol (spice-server tries a WebSocket upgrade) with the same bytes.
    #[error("not a SPICE link (first bytes {magic:02x?})")]
    NotSpice {
        /// The first four bytes received.
        magic: [u8; 4],
    },
    /// A link header's magic is not `REDQ` (a reply, or a link error in place of a result).
    #[error("invalid link magic {magic:02x?}")]
    InvalidMagic {
        /// The four bytes found.
        magic: [u8; 4],
    },
    /// The peer speaks another major version.
    #[error("protocol version {major}.{minor} not supported")]
    VersionMismatch {
        /// Major version received.
        major: u32,
        /// Minor version received.
        minor: u32,
    },
    /// The link header's `size` is outside the accepted range.
    #[error("link message size {size} outside {min}..={max}")]
    InvalidSize {
        /// The size received.
        size: u32,
        /// Smallest accepted.
        min: u32,
        /// Largest accepted.
        max: u32,
    },
    /// A capability count exceeds [`MAX_CAP_WORDS`].
    #[error("too many capability words ({common} common, {channel} channel)")]
    TooManyCaps {
        /// Common caps word count.
        common: u32,
        /// Channel caps word count.
        channel: u32,
    },
    /// The capability array lies outside the message, or overlaps its fixed part.
    #[error("caps at offset {caps_offset} ({words} words) outside the {size}-byte message")]
    CapsOutOfRange {
        /// `caps_offset` received.
        caps_offset: u32,
        /// Total words.
        words: u32,
        /// Message size.
        size: u32,
    },
    /// A link structure could not be read.
    #[error("malformed link data: {0}")]
    Malformed(#[from] DecodeError),
    /// The client asked for an auth mechanism the server does not offer.
    #[error("unsupported auth mechanism {mechanism}")]
    UnknownAuthMechanism {
        /// The mechanism word.
        mechanism: u32,
    },
    /// The server offers no mechanism this client implements (SASL only).
    #[error("the server offers no supported auth mechanism")]
    AuthUnsupported,
    /// Encrypting the ticket failed (bad server key, password too long).
    #[error("ticket: {0}")]
    Ticket(#[from] TicketError),
    /// Server side: the client's ticket was refused.
    #[error("ticket refused: {reason:?}")]
    TicketRejected {
        /// Why.
        reason: TicketRejection,
    },
    /// Client side: the server answered with this link error.
    #[error("server refused the link: {code}")]
    Server {
        /// The server's code (for example `PERMISSION_DENIED`).
        code: LinkErr,
    },
    /// Server side: the caller refused the link with this code (already queued).
    #[error("link refused: {code}")]
    Refused {
        /// The code sent.
        code: LinkErr,
    },
    /// A state machine was driven out of order (input after it finished, say).
    #[error("link state machine misuse: {0}")]
    InvalidState(&'static str),
}

impl LinkError {
    /// The SpiceLinkErr a server answers this failure with.
    pub fn link_err(&self) -> LinkErr {
        match self {
            LinkError::NotSpice { .. } | LinkError::InvalidMagic { .. } => LinkErr::INVALID_MAGIC,
            LinkError::VersionMismatch { .. } => LinkErr::VERSION_MISMATCH,
            LinkError::InvalidSize { .. }
            | LinkError::TooManyCaps { .. }
            | LinkError::CapsOutOfRange { .. }
            | LinkError::Malformed(_)
            | LinkError::UnknownAuthMechanism { .. } => LinkErr::INVALID_DATA,
            LinkError::Ticket(_) | LinkError::TicketRejected { .. } => LinkErr::PERMISSION_DENIED,
            LinkError::Server { code } | LinkError::Refused { code } => *code,
            LinkError::AuthUnsupported | LinkError::InvalidState(_) => LinkErr::ERROR,
        }
    }
}

/// `SpiceLinkHeader` (16 bytes): magic, major, minor, size of what follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkHeader {
    /// Major version (2).
    pub major_version: u32,
    /// Minor version (2).
    pub minor_version: u32,
    /// Bytes of the link message or reply that follow.
    pub size: u32,
}

impl LinkHeader {
    /// Wire size: magic (4) + major (4) + minor (4) + size (4).
    pub const SIZE: usize = 4 + 4 + 4 + 4;

    /// A version 2.2 header announcing `size` bytes.
    pub fn new(size: u32) -> Self {
        Self {
            major_version: VERSION_MAJOR,
            minor_version: VERSION_MINOR,
            size,
        }
    }

    /// Reads a header from at least 16 bytes, checking only the magic
    /// ([`LinkError::InvalidMagic`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, LinkError> {
        let mut r = ReadCursor::new(bytes);
        r.ensure(Self::SIZE, "link_header")?;
        let magic = r.read_array::<4>("link_header.magic")?;
        if magic != MAGIC {
            return Err(LinkError::InvalidMagic { magic });
        }
        Ok(Self {
            major_version: r.read_u32("link_header.major_version")?,
            minor_version: r.read_u32("link_header.minor_version")?,
            size: r.read_u32("link_header.size")?,
        })
    }

    /// Checks the version (major must be 2) and that `size` is in `min..=max`.
    pub fn validate(&self, min: u32, max: u32) -> Result<(), LinkError> {
        if self.major_version != VERSION_MAJOR {
            return Err(LinkError::VersionMismatch {
                major: self.major_version,
                minor: self.minor_version,
            });
        }
        if self.size < min || self.size > max {
            return Err(LinkError::InvalidSize {
                size: self.size,
                min,
                max,
            });
        }
        Ok(())
    }
}

impl Encode for LinkHeader {
    fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        w.write_slice(&MAGIC);
        w.write_u32(self.major_version);
        w.write_u32(self.minor_version);
        w.write_u32(self.size);
        Ok(())
    }
}

impl<'a> crate::wire::Decode<'a> for LinkHeader {
    fn decode(r: &mut ReadCursor<'a>) -> Result<Self, DecodeError> {
        r.ensure(Self::SIZE, "link_header")?;
        let magic = r.read_u32("link_header.magic")?;
        if magic.to_le_bytes() != MAGIC {
            return Err(DecodeError::InvalidValue {
                field: "link_header.magic",
                value: u64::from(magic),
            });
        }
        Ok(Self {
            major_version: r.read_u32("link_header.major_version")?,
            minor_version: r.read_u32("link_header.minor_version")?,
            size: r.read_u32("link_header.size")?,
        })
    }
}

/// Reads the two capability arrays of a link message or reply, as spice-server validates
/// them: each count at most [`MAX_CAP_WORDS`]; when any caps are present they must start at
/// or after the fixed part and end inside the message. With no caps, `caps_offset` is not
/// checked (spice-server does the same).
fn decode_caps(
    body: &[u8],
    fixed: usize,
    num_common: u32,
    num_channel: u32,
    caps_offset: u32,
) -> Result<(Caps, Caps), LinkError> {
    if num_common > MAX_CAP_WORDS || num_channel > MAX_CAP_WORDS {
        return Err(LinkError::TooManyCaps {
            common: num_common,
            channel: num_channel,
        });
    }
    let words = num_common + num_channel; // at most 2048: no overflow
    if words == 0 {
        return Ok((Caps::new(), Caps::new()));
    }
    let end = u64::from(caps_offset) + 4 * u64::from(words);
    let gap_too_large = u64::from(caps_offset) > fixed as u64 + u64::from(MAX_LINK_SIZE);
    if (caps_offset as usize) < fixed || end > body.len() as u64 || gap_too_large {
        return Err(LinkError::CapsOutOfRange {
            caps_offset,
            words,
            size: u32::try_from(body.len()).unwrap_or(u32::MAX),
        });
    }
    let mut r = ReadCursor::new(body).at_offset(caps_offset, "caps_offset")?;
    let common = Caps::decode_words(&mut r, num_common, "common_caps")?;
    let channel = Caps::decode_words(&mut r, num_channel, "channel_caps")?;
    Ok((common, channel))
}

/// Writes the caps at `caps_offset` (zero-filling any gap after the fixed part).
fn encode_caps(
    w: &mut WriteBuf<'_>,
    caps_offset: u32,
    common: &Caps,
    channel: &Caps,
) -> Result<(), EncodeError> {
    if common.word_count() + channel.word_count() == 0 {
        return Ok(());
    }
    let at = caps_offset as usize;
    if at < w.offset() {
        return Err(EncodeError::Inconsistent {
            field: "caps_offset",
        });
    }
    if at - w.offset() > MAX_LINK_SIZE as usize {
        return Err(EncodeError::TooLarge {
            field: "caps_offset",
            value: u64::from(caps_offset),
        });
    }
    w.write_zeros(at - w.offset());
    common.encode_words(w);
    channel.encode_words(w);
    Ok(())
}

/// `SpiceLinkMess` (client → server): 18 bytes plus the capability words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkMess {
    /// 0 on the main channel; then `MAIN_INIT.session_id`.
    pub connection_id: u32,
    /// Channel type.
    pub channel_type: ChannelType,
    /// Channel instance.
    pub channel_id: u8,
    /// Client's common caps.
    pub common_caps: Caps,
    /// Client's channel caps.
    pub channel_caps: Caps,
    /// Offset of the caps from the start of the link message; 18 for every known client.
    /// When larger, the gap is written as zeros. Bytes after the caps (allowed by
    /// spice-server within `size`) are not kept.
    pub caps_offset: u32,
}

impl LinkMess {
    /// Fixed part: connection_id (4) + channel_type (1) + channel_id (1)
    /// + num_common_caps (4) + num_channel_caps (4) + caps_offset (4).
    pub const FIXED_SIZE: usize = 4 + 1 + 1 + 4 + 4 + 4;

    /// A link message with caps right after the fixed part.
    pub fn new(
        connection_id: u32,
        channel_type: ChannelType,
        channel_id: u8,
        common_caps: Caps,
        channel_caps: Caps,
    ) -> Self {
        Self {
            connection_id,
            channel_type,
            channel_id,
            common_caps,
            channel_caps,
            caps_offset: Self::FIXED_SIZE as u32,
        }
    }

    /// Decodes the `size` bytes that follow the link header, validating as spice-server
    /// does (every failure maps to `INVALID_DATA`).
    pub fn decode_body(body: &[u8]) -> Result<Self, LinkError> {
        let mut r = ReadCursor::new(body);
        r.ensure(Self::FIXED_SIZE, "link_mess")?;
        let connection_id = r.read_u32("link_mess.connection_id")?;
        let channel_type = ChannelType(r.read_u8("link_mess.channel_type")?);
        let channel_id = r.read_u8("link_mess.channel_id")?;
        let num_common = r.read_u32("link_mess.num_common_caps")?;
        let num_channel = r.read_u32("link_mess.num_channel_caps")?;
        let caps_offset = r.read_u32("link_mess.caps_offset")?;
        let (common_caps, channel_caps) =
            decode_caps(body, Self::FIXED_SIZE, num_common, num_channel, caps_offset)?;
        Ok(Self {
            connection_id,
            channel_type,
            channel_id,
            common_caps,
            channel_caps,
            caps_offset,
        })
    }

    /// Header plus message, ready to send.
    pub fn to_link_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        with_link_header(self)
    }
}

impl Encode for LinkMess {
    fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        w.write_u32(self.connection_id);
        w.write_u8(self.channel_type.0);
        w.write_u8(self.channel_id);
        w.write_u32(self.common_caps.wire_count("link_mess.num_common_caps")?);
        w.write_u32(self.channel_caps.wire_count("link_mess.num_channel_caps")?);
        w.write_u32(self.caps_offset);
        encode_caps(w, self.caps_offset, &self.common_caps, &self.channel_caps)
    }
}

/// `SpiceLinkReply` (server → client): 178 bytes plus the capability words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkReply {
    /// [`LinkErr::OK`], or the reason the link is refused.
    pub error: LinkErr,
    /// The server's ticket key, DER `SubjectPublicKeyInfo` (zeros in error replies).
    pub pub_key: [u8; PUBKEY_BYTES],
    /// Server's common caps.
    pub common_caps: Caps,
    /// Server's caps for this channel.
    pub channel_caps: Caps,
    /// Offset of the caps from the start of the reply; spice-server sends 178.
    pub caps_offset: u32,
}

impl LinkReply {
    /// Fixed part: error (4) + pub_key (162) + num_common_caps (4) + num_channel_caps (4)
    /// + caps_offset (4).
    pub const FIXED_SIZE: usize = 4 + PUBKEY_BYTES + 4 + 4 + 4;

    /// A successful reply with caps right after the fixed part.
    pub fn new(pub_key: [u8; PUBKEY_BYTES], common_caps: Caps, channel_caps: Caps) -> Self {
        Self {
            error: LinkErr::OK,
            pub_key,
            common_caps,
            channel_caps,
            caps_offset: Self::FIXED_SIZE as u32,
        }
    }

    /// The reply spice-server sends to refuse a link (`reds_send_link_error`): all zero but
    /// the error, no caps, and `caps_offset` 0.
    pub fn error_reply(error: LinkErr) -> Self {
        Self {
            error,
            pub_key: [0; PUBKEY_BYTES],
            common_caps: Caps::new(),
            channel_caps: Caps::new(),
            caps_offset: 0,
        }
    }

    /// Decodes the `size` bytes that follow the link header.
    pub fn decode_body(body: &[u8]) -> Result<Self, LinkError> {
        let mut r = ReadCursor::new(body);
        r.ensure(Self::FIXED_SIZE, "link_reply")?;
        let error = LinkErr(r.read_u32("link_reply.error")?);
        let pub_key = r.read_array::<PUBKEY_BYTES>("link_reply.pub_key")?;
        let num_common = r.read_u32("link_reply.num_common_caps")?;
        let num_channel = r.read_u32("link_reply.num_channel_caps")?;
        let caps_offset = r.read_u32("link_reply.caps_offset")?;
        let (common_caps, channel_caps) =
            decode_caps(body, Self::FIXED_SIZE, num_common, num_channel, caps_offset)?;
        Ok(Self {
            error,
            pub_key,
            common_caps,
            channel_caps,
            caps_offset,
        })
    }

    /// Header plus reply, ready to send.
    pub fn to_link_bytes(&self) -> Result<Vec<u8>, EncodeError> {
        with_link_header(self)
    }
}

impl Encode for LinkReply {
    fn encode(&self, w: &mut WriteBuf<'_>) -> Result<(), EncodeError> {
        w.write_u32(self.error.0);
        w.write_slice(&self.pub_key);
        w.write_u32(self.common_caps.wire_count("link_reply.num_common_caps")?);
        w.write_u32(
            self.channel_caps
                .wire_count("link_reply.num_channel_caps")?,
        );
        w.write_u32(self.caps_offset);
        encode_caps(w, self.caps_offset, &self.common_caps, &self.channel_caps)
    }
}

fn with_link_header(body: &impl Encode) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    LinkHeader::new(0).encode(&mut WriteBuf::new(&mut out))?;
    body.encode(&mut WriteBuf::new(&mut out))?;
    let size: u32 = WriteBuf::len_as(out.len() - LinkHeader::SIZE, "link_header.size")?;
    out[12..16].copy_from_slice(&size.to_le_bytes());
    Ok(out)
}

/// The full link error spice-server sends to refuse a link before authentication:
/// a link header and an [`LinkReply::error_reply`] (194 bytes).
pub fn link_error_bytes(code: LinkErr) -> Vec<u8> {
    let mut out = Vec::with_capacity(LinkHeader::SIZE + LinkReply::FIXED_SIZE);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION_MAJOR.to_le_bytes());
    out.extend_from_slice(&VERSION_MINOR.to_le_bytes());
    out.extend_from_slice(&(LinkReply::FIXED_SIZE as u32).to_le_bytes());
    out.extend_from_slice(&code.0.to_le_bytes());
    out.resize(LinkHeader::SIZE + LinkReply::FIXED_SIZE, 0);
    out
}

/// What a finished link agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkOutcome {
    /// The peer's common caps.
    pub peer_common_caps: Caps,
    /// The peer's channel caps.
    pub peer_channel_caps: Caps,
    /// True when data messages use the 6-byte mini header (both sides have MINI_HEADER).
    pub mini_header: bool,
}

/// Appends input bytes to `buf` until it holds `target` bytes. Returns true when it does.
fn fill(buf: &mut Vec<u8>, target: usize, input: &[u8], consumed: &mut usize) -> bool {
    let want = target.saturating_sub(buf.len());
    let take = want.min(input.len() - *consumed);
    buf.extend_from_slice(&input[*consumed..*consumed + take]);
    *consumed += take;
    buf.len() >= target
}

/// Boxed cryptographic RNG used by the link machines.
pub type BoxRng = Box<dyn CryptoRngCore + Send>;

// ----------------------------------------------------------------------------------------
// Client
// ----------------------------------------------------------------------------------------

/// What a [`ClientLink`] needs to link one channel.
#[derive(Debug, Clone)]
pub struct ClientLinkConfig {
    /// 0 for the main channel, then `MAIN_INIT.session_id`.
    pub connection_id: u32,
    /// Channel type.
    pub channel_type: ChannelType,
    /// Channel instance.
    pub channel_id: u8,
    /// Common caps to advertise ([`caps::default_client_common_caps`] is typical).
    pub common_caps: Caps,
    /// Channel caps to advertise.
    pub channel_caps: Caps,
    /// The password (at most 60 bytes, no NUL; empty for none).
    pub password: Vec<u8>,
}

/// Where a [`ClientLink`] is after some input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientLinkStatus {
    /// At least this many more bytes are needed. Send [`ClientLink::take_output`] first.
    NeedMore(usize),
    /// The server accepted the link; data messages follow.
    Linked(LinkOutcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    ReplyHeader,
    Reply { size: u32 },
    Result,
    ErrorHeader,
    ErrorBody { size: u32 },
    Done,
    Failed,
}

/// The client side of the link stage, sans-IO.
///
/// Create it, send [`ClientLink::take_output`] (link header + message), then feed what the
/// server sends to [`ClientLink::handle_input`]; send any new output after each call. It
/// never consumes bytes past the link result, so the data stage can start with the rest.
pub struct ClientLink {
    config: ClientLinkConfig,
    state: ClientState,
    buf: Vec<u8>,
    out: Vec<u8>,
    reply: Option<LinkReply>,
    rng: BoxRng,
}

impl fmt::Debug for ClientLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientLink")
            .field("channel_type", &self.config.channel_type)
            .field("channel_id", &self.config.channel_id)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl ClientLink {
    /// Starts a link with the OS RNG for ticket encryption.
    pub fn new(config: ClientLinkConfig) -> Result<Self, LinkError> {
        Self::with_rng(config, Box::new(OsRng))
    }

    /// Starts a link with the given RNG. Refuses passwords over 60 bytes at once.
    pub fn with_rng(config: ClientLinkConfig, rng: BoxRng) -> Result<Self, LinkError> {
        ticket::check_password(&config.password)?;
        let mess = LinkMess::new(
            config.connection_id,
            config.channel_type,
            config.channel_id,
            config.common_caps.clone(),
            config.channel_caps.clone(),
        );
        let out = mess.to_link_bytes().map_err(|e| {
            tracing::debug!(error = %e, "link message does not encode");
            LinkError::TooManyCaps {
                common: u32::try_from(config.common_caps.word_count()).unwrap_or(u32::MAX),
                channel: u32::try_from(config.channel_caps.word_count()).unwrap_or(u32::MAX),
            }
        })?;
        Ok(Self {
            config,
            state: ClientState::ReplyHeader,
            buf: Vec::new(),
            out,
            reply: None,
            rng,
        })
    }

    /// Bytes to send to the server (taken; empty when there is nothing new).
    pub fn take_output(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.out)
    }

    /// The server's link reply, once received.
    pub fn reply(&self) -> Option<&LinkReply> {
        self.reply.as_ref()
    }

    /// How many more bytes the machine needs before it can make progress (0 when done).
    pub fn bytes_needed(&self) -> usize {
        let target = match self.state {
            ClientState::ReplyHeader | ClientState::ErrorHeader => LinkHeader::SIZE,
            ClientState::Reply { size } => size as usize,
            ClientState::Result => 4,
            ClientState::ErrorBody { size } => LinkHeader::SIZE + size as usize,
            ClientState::Done | ClientState::Failed => return 0,
        };
        target.saturating_sub(self.buf.len())
    }

    /// Consumes server bytes. Returns how many of `input` were used and the status.
    /// On error the link is over (close the connection).
    pub fn handle_input(&mut self, input: &[u8]) -> Result<(usize, ClientLinkStatus), LinkError> {
        let mut consumed = 0;
        match self.step(input, &mut consumed) {
            Ok(status) => Ok((consumed, status)),
            Err(e) => {
                self.state = ClientState::Failed;
                tracing::debug!(error = %e, "client link failed");
                Err(e)
            }
        }
    }

    fn step(&mut self, input: &[u8], consumed: &mut usize) -> Result<ClientLinkStatus, LinkError> {
        loop {
            match self.state {
                ClientState::Done | ClientState::Failed => {
                    return Err(LinkError::InvalidState("client link already finished"));
                }
                ClientState::ReplyHeader => {
                    if !fill(&mut self.buf, LinkHeader::SIZE, input, consumed) {
                        return Ok(ClientLinkStatus::NeedMore(self.bytes_needed()));
                    }
                    let h = LinkHeader::parse(&self.buf)?;
                    h.validate(LinkReply::FIXED_SIZE as u32, MAX_LINK_SIZE)?;
                    self.buf.clear();
                    self.state = ClientState::Reply { size: h.size };
                }
                ClientState::Reply { size } => {
                    if !fill(&mut self.buf, size as usize, input, consumed) {
                        return Ok(ClientLinkStatus::NeedMore(self.bytes_needed()));
                    }
                    let reply = LinkReply::decode_body(&self.buf)?;
                    self.buf.clear();
                    if !reply.error.is_ok() {
                        return Err(LinkError::Server { code: reply.error });
                    }
                    self.send_auth(&reply)?;
                    self.reply = Some(reply);
                    self.state = ClientState::Result;
                }
                ClientState::Result => {
                    if !fill(&mut self.buf, 4, input, consumed) {
                        return Ok(ClientLinkStatus::NeedMore(self.bytes_needed()));
                    }
                    if self.buf[..4] == MAGIC {
                        // A full link error where the result was expected (for example after
                        // an auth mechanism the server refused); keep the 4 bytes read.
                        self.state = ClientState::ErrorHeader;
                        continue;
                    }
                    let code = LinkErr(u32::from_le_bytes([
                        self.buf[0],
                        self.buf[1],
                        self.buf[2],
                        self.buf[3],
                    ]));
                    self.buf.clear();
                    if !code.is_ok() {
                        return Err(LinkError::Server { code });
                    }
                    self.state = ClientState::Done;
                    let reply = self
                        .reply
                        .as_ref()
                        .ok_or(LinkError::InvalidState("no reply"))?;
                    return Ok(ClientLinkStatus::Linked(LinkOutcome {
                        peer_common_caps: reply.common_caps.clone(),
                        peer_channel_caps: reply.channel_caps.clone(),
                        mini_header: caps::negotiate_mini_header(
                            &self.config.common_caps,
                            &reply.common_caps,
                        ),
                    }));
                }
                ClientState::ErrorHeader => {
                    if !fill(&mut self.buf, LinkHeader::SIZE, input, consumed) {
                        return Ok(ClientLinkStatus::NeedMore(self.bytes_needed()));
                    }
                    let h = LinkHeader::parse(&self.buf)?;
                    h.validate(4, MAX_LINK_SIZE)?;
                    self.state = ClientState::ErrorBody { size: h.size };
                }
                ClientState::ErrorBody { size } => {
                    if !fill(
                        &mut self.buf,
                        LinkHeader::SIZE + size as usize,
                        input,
                        consumed,
                    ) {
                        return Ok(ClientLinkStatus::NeedMore(self.bytes_needed()));
                    }
                    let b = &self.buf[LinkHeader::SIZE..];
                    let code = LinkErr(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                    return Err(LinkError::Server { code });
                }
            }
        }
    }

    fn send_auth(&mut self, reply: &LinkReply) -> Result<(), LinkError> {
        let server = &reply.common_caps;
        let mut w = WriteBuf::new(&mut self.out);
        // The mechanism word is sent only when both sides understand it; otherwise the
        // ticket follows the reply directly (the pre-auth-selection scheme).
        let selection = caps::common::PROTOCOL_AUTH_SELECTION;
        if server.has(selection) && self.config.common_caps.has(selection) {
            if server.has(caps::common::AUTH_SASL) && !server.has(caps::common::AUTH_SPICE) {
                return Err(LinkError::AuthUnsupported);
            }
            w.write_u32(AuthMechanism::SPICE.0);
        }
        let ct = ticket::encrypt_ticket(&mut *self.rng, &reply.pub_key, &self.config.password);
        match ct {
            Ok(ct) => {
                self.out.extend_from_slice(&ct);
                Ok(())
            }
            Err(e) => {
                self.out.clear();
                Err(e.into())
            }
        }
    }
}

// ----------------------------------------------------------------------------------------
// Server
// ----------------------------------------------------------------------------------------

/// How a server checks tickets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketPolicy {
    /// Ticketing disabled: any ticket that decrypts is accepted (spice-server still reads
    /// and decrypts it).
    Disabled,
    /// The client must present this password. An empty password refuses every client,
    /// like spice-server with ticketing on and no password set.
    Password {
        /// The password bytes.
        password: Vec<u8>,
        /// Refuse from this time on (`None`: never expires).
        expires_at: Option<SystemTime>,
    },
}

/// What a [`ServerLink`] needs.
#[derive(Debug, Clone)]
pub struct ServerLinkConfig {
    /// Common caps the server advertises ([`caps::default_server_common_caps`]).
    pub common_caps: Caps,
    /// How tickets are checked.
    pub ticket: TicketPolicy,
}

/// Where a [`ServerLink`] is after some input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLinkStatus {
    /// At least this many more bytes are needed.
    NeedMore(usize),
    /// The link message arrived ([`ServerLink::link_mess`]). Call [`ServerLink::reply`]
    /// with this channel's caps, or [`ServerLink::refuse`] (e.g. `NEED_SECURED`).
    LinkMess,
    /// The ticket was accepted. Call [`ServerLink::accept`], or [`ServerLink::refuse`] (e.g.
    /// `BAD_CONNECTION_ID`, `CHANNEL_NOT_AVAILABLE`), which sends the code as link result.
    Authenticated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    Header,
    Mess { size: u32 },
    AwaitReply,
    Mechanism,
    Ticket,
    AwaitDecision,
    Done,
    Failed,
}

/// The server side of the link stage, sans-IO.
///
/// Feed client bytes to [`ServerLink::handle_input`] and send [`ServerLink::take_output`]
/// after every call, also after an error: on failures the machine queues what spice-server
/// would send (a full link error before the reply, a result word after it), except for
/// [`LinkError::NotSpice`] and a zero major version, where nothing is sent.
pub struct ServerLink {
    config: ServerLinkConfig,
    key: TicketKey,
    state: ServerState,
    buf: Vec<u8>,
    out: Vec<u8>,
    mess: Option<LinkMess>,
    rng: BoxRng,
}

impl fmt::Debug for ServerLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerLink")
            .field("state", &self.state)
            .field("mess", &self.mess)
            .finish_non_exhaustive()
    }
}

impl ServerLink {
    /// A server link using `key` (a fresh key per link, as spice-server does) and the OS RNG
    /// for decryption blinding.
    pub fn new(config: ServerLinkConfig, key: TicketKey) -> Self {
        Self::with_rng(config, key, Box::new(OsRng))
    }

    /// A server link with a freshly generated ticket key (from the OS RNG). Key generation
    /// takes a while; servers under load may prefer to generate keys ahead and use
    /// [`ServerLink::new`].
    pub fn with_fresh_key(config: ServerLinkConfig) -> Result<Self, LinkError> {
        let key = TicketKey::generate(&mut OsRng)?;
        Ok(Self::new(config, key))
    }

    /// A server link with the given RNG.
    pub fn with_rng(config: ServerLinkConfig, key: TicketKey, rng: BoxRng) -> Self {
        Self {
            config,
            key,
            state: ServerState::Header,
            buf: Vec::new(),
            out: Vec::new(),
            mess: None,
            rng,
        }
    }

    /// Bytes to send to the client (taken).
    pub fn take_output(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.out)
    }

    /// The client's link message, once received.
    pub fn link_mess(&self) -> Option<&LinkMess> {
        self.mess.as_ref()
    }

    /// How many more bytes are needed before progress (0 while waiting for the caller or
    /// when finished).
    pub fn bytes_needed(&self) -> usize {
        let target = match self.state {
            ServerState::Header => LinkHeader::SIZE,
            ServerState::Mess { size } => size as usize,
            ServerState::Mechanism => 4,
            ServerState::Ticket => ENCRYPTED_TICKET_BYTES,
            _ => return 0,
        };
        target.saturating_sub(self.buf.len())
    }

    /// Consumes client bytes; `now` is compared with the ticket's expiry. Returns how many
    /// bytes were used and the status. Never consumes past the ticket.
    pub fn handle_input(
        &mut self,
        input: &[u8],
        now: SystemTime,
    ) -> Result<(usize, ServerLinkStatus), LinkError> {
        let mut consumed = 0;
        match self.step(input, now, &mut consumed) {
            Ok(status) => Ok((consumed, status)),
            Err(e) => {
                self.state = ServerState::Failed;
                tracing::debug!(error = %e, "server link failed");
                Err(e)
            }
        }
    }

    fn step(
        &mut self,
        input: &[u8],
        now: SystemTime,
        consumed: &mut usize,
    ) -> Result<ServerLinkStatus, LinkError> {
        loop {
            match self.state {
                ServerState::Header => {
                    // Look at the magic as soon as it is there, so a WebSocket (or anything
                    // else) is told apart without waiting for 16 bytes.
                    let magic_done = fill(&mut self.buf, 4, input, consumed);
                    if magic_done && self.buf[..4] != MAGIC {
                        let magic = [self.buf[0], self.buf[1], self.buf[2], self.buf[3]];
                        return Err(LinkError::NotSpice { magic });
                    }
                    if !magic_done || !fill(&mut self.buf, LinkHeader::SIZE, input, consumed) {
                        return Ok(ServerLinkStatus::NeedMore(self.bytes_needed()));
                    }
                    let h = LinkHeader::parse(&self.buf)?;
                    self.buf.clear();
                    if let Err(e) = h.validate(MIN_LINK_MESS_SIZE, MAX_LINK_SIZE) {
                        // spice-server stays silent for major version 0.
                        if h.major_version != 0 {
                            self.out.extend_from_slice(&link_error_bytes(e.link_err()));
                        }
                        return Err(e);
                    }
                    self.state = ServerState::Mess { size: h.size };
                }
                ServerState::Mess { size } => {
                    if !fill(&mut self.buf, size as usize, input, consumed) {
                        return Ok(ServerLinkStatus::NeedMore(self.bytes_needed()));
                    }
                    let mess = LinkMess::decode_body(&self.buf);
                    self.buf.clear();
                    match mess {
                        Ok(m) => {
                            self.mess = Some(m);
                            self.state = ServerState::AwaitReply;
                            return Ok(ServerLinkStatus::LinkMess);
                        }
                        Err(e) => {
                            self.out.extend_from_slice(&link_error_bytes(e.link_err()));
                            return Err(e);
                        }
                    }
                }
                ServerState::AwaitReply => {
                    return Err(LinkError::InvalidState(
                        "reply() or refuse() must follow the link message",
                    ));
                }
                ServerState::AwaitDecision => {
                    return Err(LinkError::InvalidState(
                        "accept() or refuse() must follow authentication",
                    ));
                }
                ServerState::Done | ServerState::Failed => {
                    return Err(LinkError::InvalidState("server link already finished"));
                }
                ServerState::Mechanism => {
                    if !fill(&mut self.buf, 4, input, consumed) {
                        return Ok(ServerLinkStatus::NeedMore(self.bytes_needed()));
                    }
                    let mech =
                        u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                    self.buf.clear();
                    if mech != AuthMechanism::SPICE.0 {
                        // spice-server answers an unknown (or disabled) mechanism with a full
                        // link error, which the client reads where it expects the result.
                        let e = LinkError::UnknownAuthMechanism { mechanism: mech };
                        self.out.extend_from_slice(&link_error_bytes(e.link_err()));
                        return Err(e);
                    }
                    self.state = ServerState::Ticket;
                }
                ServerState::Ticket => {
                    if !fill(&mut self.buf, ENCRYPTED_TICKET_BYTES, input, consumed) {
                        return Ok(ServerLinkStatus::NeedMore(self.bytes_needed()));
                    }
                    let ct = core::mem::take(&mut self.buf);
                    if let Err(reason) = self.check_ticket(&ct, now) {
                        self.out
                            .extend_from_slice(&LinkErr::PERMISSION_DENIED.0.to_le_bytes());
                        return Err(LinkError::TicketRejected { reason });
                    }
                    self.state = ServerState::AwaitDecision;
                    return Ok(ServerLinkStatus::Authenticated);
                }
            }
        }
    }

    fn check_ticket(&mut self, ct: &[u8], now: SystemTime) -> Result<(), TicketRejection> {
        let password = self
            .key
            .decrypt_password(&mut *self.rng, ct)
            .map_err(|_| TicketRejection::Undecryptable)?;
        match &self.config.ticket {
            TicketPolicy::Disabled => Ok(()),
            TicketPolicy::Password {
                password: expected,
                expires_at,
            } => {
                if expected.is_empty() {
                    return Err(TicketRejection::NoPasswordSet);
                }
                if expires_at.is_some_and(|t| now >= t) {
                    return Err(TicketRejection::Expired);
                }
                if !ticket::ct_eq(&password, expected) {
                    return Err(TicketRejection::WrongPassword);
                }
                Ok(())
            }
        }
    }

    /// Answers the link message with the server's common caps, `channel_caps` and this
    /// link's public key. Only valid after [`ServerLinkStatus::LinkMess`].
    pub fn reply(&mut self, channel_caps: Caps) -> Result<(), LinkError> {
        if self.state != ServerState::AwaitReply {
            return Err(LinkError::InvalidState(
                "reply() without a pending link message",
            ));
        }
        let reply = LinkReply::new(
            *self.key.public_key_der(),
            self.config.common_caps.clone(),
            channel_caps,
        );
        let bytes = reply.to_link_bytes().map_err(|_| LinkError::TooManyCaps {
            common: u32::try_from(reply.common_caps.word_count()).unwrap_or(u32::MAX),
            channel: u32::try_from(reply.channel_caps.word_count()).unwrap_or(u32::MAX),
        })?;
        self.out.extend_from_slice(&bytes);
        let selection = caps::common::PROTOCOL_AUTH_SELECTION;
        let client_selects = self.config.common_caps.has(selection)
            && self
                .mess
                .as_ref()
                .is_some_and(|m| m.common_caps.has(selection));
        self.state = if client_selects {
            ServerState::Mechanism
        } else {
            ServerState::Ticket
        };
        Ok(())
    }

    /// Refuses the link with `code`: before the reply as a full link error (header + zeroed
    /// reply), after authentication as the result word. Returns the matching error.
    pub fn refuse(&mut self, code: LinkErr) -> LinkError {
        match self.state {
            ServerState::AwaitReply => self.out.extend_from_slice(&link_error_bytes(code)),
            ServerState::AwaitDecision => self.out.extend_from_slice(&code.0.to_le_bytes()),
            _ => return LinkError::InvalidState("refuse() only after LinkMess or Authenticated"),
        }
        self.state = ServerState::Failed;
        LinkError::Refused { code }
    }

    /// Accepts an authenticated link: queues the OK result word and returns what was
    /// negotiated. Only valid after [`ServerLinkStatus::Authenticated`].
    pub fn accept(&mut self) -> Result<LinkOutcome, LinkError> {
        if self.state != ServerState::AwaitDecision {
            return Err(LinkError::InvalidState("accept() before authentication"));
        }
        let mess = self
            .mess
            .as_ref()
            .ok_or(LinkError::InvalidState("no link message"))?;
        self.out.extend_from_slice(&LinkErr::OK.0.to_le_bytes());
        self.state = ServerState::Done;
        Ok(LinkOutcome {
            peer_common_caps: mess.common_caps.clone(),
            peer_channel_caps: mess.channel_caps.clone(),
            mini_header: caps::negotiate_mini_header(&self.config.common_caps, &mess.common_caps),
        })
    }
}

// ----------------------------------------------------------------------------------------
// Fuzzing entry point
// ----------------------------------------------------------------------------------------

fn fuzz_key() -> &'static TicketKey {
    static KEY: std::sync::OnceLock<TicketKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| match TicketKey::generate(&mut OsRng) {
        Ok(k) => k,
        Err(e) => panic!("fuzz setup: RSA key generation failed: {e}"),
    })
}

/// Feeds arbitrary bytes to every link-stage decoder and to both state machines; panics
/// only on a bug (a decode/encode round trip that disagrees). Used by the `link_stage`
/// fuzz target and its corpus replay test.
///
/// The first byte picks a chunk size for incremental feeding; the rest is the input.
pub fn fuzz_link_stage(data: &[u8]) {
    let Some((&chunk, data)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk % 64) + 1;

    if let Ok(h) = LinkHeader::parse(data) {
        let bytes = h.to_vec().expect("header encodes");
        assert_eq!(&bytes[..], &data[..LinkHeader::SIZE]);
    }
    let body = data.get(LinkHeader::SIZE..).unwrap_or(&[]);
    for input in [data, body] {
        if let Ok(m) = LinkMess::decode_body(input) {
            let bytes = m.to_vec().expect("decoded link message re-encodes");
            assert_eq!(LinkMess::decode_body(&bytes).as_ref(), Ok(&m));
        }
        if let Ok(r) = LinkReply::decode_body(input) {
            let bytes = r.to_vec().expect("decoded link reply re-encodes");
            assert_eq!(LinkReply::decode_body(&bytes).as_ref(), Ok(&r));
        }
    }

    // Server fed with client bytes.
    let mut server = ServerLink::new(
        ServerLinkConfig {
            common_caps: caps::default_server_common_caps(),
            ticket: TicketPolicy::Password {
                password: b"secret".to_vec(),
                expires_at: None,
            },
        },
        fuzz_key().clone(),
    );
    let now = SystemTime::UNIX_EPOCH;
    let mut rest = data;
    while !rest.is_empty() {
        let n = chunk.min(rest.len());
        match server.handle_input(&rest[..n], now) {
            Ok((used, status)) => {
                assert!(used <= n);
                rest = &rest[used..];
                match status {
                    ServerLinkStatus::NeedMore(k) => {
                        assert!(k > 0);
                        assert_eq!(used, n);
                    }
                    ServerLinkStatus::LinkMess => {
                        let _ = server.reply(Caps::from_caps(&[0]));
                    }
                    ServerLinkStatus::Authenticated => {
                        let _ = server.accept();
                        break;
                    }
                }
            }
            Err(_) => break,
        }
        let _ = server.take_output();
    }

    // Client fed with server bytes.
    let config = ClientLinkConfig {
        connection_id: 0,
        channel_type: ChannelType::MAIN,
        channel_id: 0,
        common_caps: caps::default_client_common_caps(),
        channel_caps: Caps::new(),
        password: b"secret".to_vec(),
    };
    if let Ok(mut client) = ClientLink::new(config) {
        let mut rest = data;
        while !rest.is_empty() {
            let n = chunk.min(rest.len());
            match client.handle_input(&rest[..n]) {
                Ok((used, ClientLinkStatus::NeedMore(k))) => {
                    assert!(k > 0 && used == n);
                    rest = &rest[used..];
                }
                Ok((_, ClientLinkStatus::Linked(_))) | Err(_) => break,
            }
        }
    }
}

/// Proptest strategies for the link-stage structures.
#[cfg(feature = "proptest")]
pub mod strategies {
    use super::*;
    use crate::caps::strategies::caps;
    use proptest::prelude::*;

    /// Any link header (magic is always `REDQ`).
    pub fn link_header() -> BoxedStrategy<LinkHeader> {
        (any::<u32>(), any::<u32>(), any::<u32>())
            .prop_map(|(major_version, minor_version, size)| LinkHeader {
                major_version,
                minor_version,
                size,
            })
            .boxed()
    }

    /// Caps offset: the fixed size plus a small gap, or anything when there are no caps.
    fn caps_offset(fixed: usize, empty: bool) -> BoxedStrategy<u32> {
        if empty {
            prop_oneof![Just(0u32), Just(fixed as u32), any::<u32>()].boxed()
        } else {
            (0u32..8).prop_map(move |gap| fixed as u32 + gap).boxed()
        }
    }

    /// Any link message whose caps lie after the fixed part.
    pub fn link_mess() -> BoxedStrategy<LinkMess> {
        (any::<u32>(), any::<u8>(), any::<u8>(), caps(), caps())
            .prop_flat_map(
                |(connection_id, ty, channel_id, common_caps, channel_caps)| {
                    let empty = common_caps.word_count() + channel_caps.word_count() == 0;
                    caps_offset(LinkMess::FIXED_SIZE, empty).prop_map(move |caps_offset| LinkMess {
                        connection_id,
                        channel_type: ChannelType(ty),
                        channel_id,
                        common_caps: common_caps.clone(),
                        channel_caps: channel_caps.clone(),
                        caps_offset,
                    })
                },
            )
            .boxed()
    }

    /// Any link reply whose caps lie after the fixed part.
    pub fn link_reply() -> BoxedStrategy<LinkReply> {
        (
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), PUBKEY_BYTES),
            caps(),
            caps(),
        )
            .prop_flat_map(|(error, key, common_caps, channel_caps)| {
                let empty = common_caps.word_count() + channel_caps.word_count() == 0;
                let mut pub_key = [0u8; PUBKEY_BYTES];
                pub_key.copy_from_slice(&key);
                caps_offset(LinkReply::FIXED_SIZE, empty).prop_map(move |caps_offset| LinkReply {
                    error: LinkErr(error),
                    pub_key,
                    common_caps: common_caps.clone(),
                    channel_caps: channel_caps.clone(),
                    caps_offset,
                })
            })
            .boxed()
    }
}
