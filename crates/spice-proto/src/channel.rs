//! Channel types and message directions.

use core::fmt;

/// A SPICE channel type (the `channel_type` byte of the link message and channel lists).
///
/// A newtype rather than an enum: peers may list channel types we do not know, and those
/// must survive a decode/encode round trip.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelType(pub u8);

impl ChannelType {
    /// Main channel (1): session, mouse mode, agent.
    pub const MAIN: Self = Self(1);
    /// Display channel (2).
    pub const DISPLAY: Self = Self(2);
    /// Inputs channel (3): keyboard and mouse.
    pub const INPUTS: Self = Self(3);
    /// Cursor channel (4).
    pub const CURSOR: Self = Self(4);
    /// Playback channel (5): audio to the client.
    pub const PLAYBACK: Self = Self(5);
    /// Record channel (6): audio from the client.
    pub const RECORD: Self = Self(6);
    /// Tunnel channel (7), removed upstream in 2019; no messages.
    pub const TUNNEL: Self = Self(7);
    /// Smartcard channel (8).
    pub const SMARTCARD: Self = Self(8);
    /// USB redirection channel (9), a SpiceVMC channel.
    pub const USBREDIR: Self = Self(9);
    /// Port channel (10), a SpiceVMC channel with open/close events.
    pub const PORT: Self = Self(10);
    /// WebDAV channel (11), a port channel.
    pub const WEBDAV: Self = Self(11);

    /// The channel's name as spice.proto spells it, or `"unknown"`.
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "main",
            2 => "display",
            3 => "inputs",
            4 => "cursor",
            5 => "playback",
            6 => "record",
            7 => "tunnel",
            8 => "smartcard",
            9 => "usbredir",
            10 => "port",
            11 => "webdav",
            _ => "unknown",
        }
    }

    /// True for the SpiceVMC family (usbredir, port, webdav), which share their data messages.
    pub fn is_spicevmc(self) -> bool {
        matches!(self.0, 9..=11)
    }
}

impl fmt::Debug for ChannelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelType({}={})", self.0, self.name())
    }
}

impl fmt::Display for ChannelType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name() == "unknown" {
            write!(f, "channel-type-{}", self.0)
        } else {
            f.write_str(self.name())
        }
    }
}

/// Who sends a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Server to client (`SPICE_MSG_*`).
    ServerToClient,
    /// Client to server (`SPICE_MSGC_*`).
    ClientToServer,
}

impl Direction {
    /// `S2C` or `C2S`, as in spec/messages.csv.
    pub fn short(self) -> &'static str {
        match self {
            Direction::ServerToClient => "S2C",
            Direction::ClientToServer => "C2S",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short())
    }
}
