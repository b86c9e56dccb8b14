//! Server settings, mirroring libspice's (`spice_server_set_*`) and QEMU's `-spice` options.
//!
//! ```
//! use spice_server::config::{ServerConfig, StreamingVideo};
//! use spice_codecs::classify::ImageCompression;
//! let config = ServerConfig::builder()
//!     .listen("127.0.0.1:5900".parse().unwrap())
//!     .password("secret", None)
//!     .image_compression(ImageCompression::Quic)
//!     .streaming_video(StreamingVideo::Filter)
//!     .build()
//!     .unwrap();
//! assert!(config.ticketing_enabled());
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use spice_codecs::classify::{ImageCompression, WanCompression};
use spice_proto::ChannelType;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An option value is not one of the accepted names.
    #[error("invalid value {value:?} for {option} (expected one of: {expected})")]
    InvalidValue {
        /// The option.
        option: &'static str,
        /// The value given.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// A password longer than the 60 bytes the RSA ticket carries, or containing NUL.
    #[error("password unusable: {0}")]
    Password(String),
    /// Neither a plain nor a TLS listen address was given.
    #[error("no listen address (plain or TLS)")]
    NoListenAddress,
    /// A TLS port without certificates.
    #[error("a TLS listen address needs certificates (--x509-dir)")]
    TlsWithoutCertificates,
    /// A certificate or key file could not be read or parsed.
    #[error("{path}: {what}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        what: String,
    },
    /// rustls refused the certificate/key pair.
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
}

/// Video streaming (`streaming-video=`): which regions are sent as MJPEG streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamingVideo {
    /// No streams.
    Off,
    /// Every region updated like video.
    All,
    /// Video-like regions, filtered by content (spice-server's default).
    #[default]
    Filter,
}

/// Whether a channel type must, may or must not use TLS (`spice_server_set_channel_security`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChannelSecurity {
    /// Either port (when TLS is configured).
    #[default]
    Any,
    /// Only on the TLS port: the plain port answers `NEED_SECURED`.
    Secure,
    /// Only on the plain port: the TLS port answers `NEED_UNSECURED`.
    Insecure,
}

/// How tickets are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ticketing {
    /// Any client may link.
    Disabled,
    /// The client must send this password (an empty one refuses everybody, as libspice
    /// does with ticketing on and no password).
    Password {
        /// The password.
        password: Vec<u8>,
        /// Refused from this time on.
        expires_at: Option<SystemTime>,
    },
}

/// Parses an image-compression name as QEMU spells it (`off`, `quic`, `lz`, `glz`,
/// `auto_glz`, `auto_lz`, `lz4`; `on` is `auto_glz`).
pub fn parse_image_compression(s: &str) -> Result<ImageCompression, ConfigError> {
    Ok(match s {
        "off" | "never" => ImageCompression::Off,
        "auto_glz" | "on" => ImageCompression::AutoGlz,
        "auto_lz" => ImageCompression::AutoLz,
        "quic" => ImageCompression::Quic,
        "glz" => ImageCompression::Glz,
        "lz" => ImageCompression::Lz,
        "lz4" => ImageCompression::Lz4,
        _ => {
            return Err(ConfigError::InvalidValue {
                option: "image-compression",
                value: s.to_owned(),
                expected: "off, quic, lz, glz, auto_glz, auto_lz, lz4",
            });
        }
    })
}

/// Parses a WAN compression setting (`auto`, `never`, `always`); `option` names it in
/// errors.
pub fn parse_wan_compression(option: &'static str, s: &str) -> Result<WanCompression, ConfigError> {
    Ok(match s {
        "auto" => WanCompression::Auto,
        "never" | "off" => WanCompression::Never,
        "always" | "on" => WanCompression::Always,
        _ => {
            return Err(ConfigError::InvalidValue {
                option,
                value: s.to_owned(),
                expected: "auto, never, always",
            });
        }
    })
}

/// Parses a streaming-video setting (`off`, `all`, `filter`).
pub fn parse_streaming_video(s: &str) -> Result<StreamingVideo, ConfigError> {
    Ok(match s {
        "off" => StreamingVideo::Off,
        "all" => StreamingVideo::All,
        "filter" => StreamingVideo::Filter,
        _ => {
            return Err(ConfigError::InvalidValue {
                option: "streaming-video",
                value: s.to_owned(),
                expected: "off, all, filter",
            });
        }
    })
}

/// The server's settings. Build with [`ServerConfig::builder`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Plain listen addresses (SPICE and WebSocket).
    pub listen: Vec<SocketAddr>,
    /// TLS listen addresses (SPICE over TLS, and WebSocket over TLS).
    pub tls_listen: Vec<SocketAddr>,
    /// Ticketing.
    pub ticketing: Ticketing,
    /// rustls settings for the TLS port.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Per channel type TLS requirement; types not listed use `default_security`.
    pub channel_security: HashMap<ChannelType, ChannelSecurity>,
    /// Requirement for channel types not in `channel_security`.
    pub default_security: ChannelSecurity,
    /// Image compression (default `auto_glz`, as libspice).
    pub image_compression: ImageCompression,
    /// JPEG for photo-like images on WAN links.
    pub jpeg_wan_compression: WanCompression,
    /// zlib over GLZ on WAN links.
    pub zlib_glz_wan_compression: WanCompression,
    /// Video streaming.
    pub streaming_video: StreamingVideo,
    /// Client mouse through the guest agent when it is connected.
    pub agent_mouse: bool,
    /// Compressed playback audio.
    pub playback_compression: bool,
    /// ACK window of every channel (spice-server: 20).
    pub ack_window: u32,
    /// Interval between latency PINGs.
    pub ping_interval: Option<Duration>,
    /// QXL RAM size hint sent in MAIN_INIT.
    pub ram_hint: u32,
    /// Guest name for the main channel's NAME message (when the client has the cap).
    pub name: Option<String>,
    /// Guest UUID for the main channel's UUID message.
    pub uuid: Option<[u8; 16]>,
}

impl ServerConfig {
    /// A builder with libspice's defaults and no listen address.
    pub fn builder() -> ServerConfigBuilder {
        ServerConfigBuilder {
            config: ServerConfig {
                listen: Vec::new(),
                tls_listen: Vec::new(),
                ticketing: Ticketing::Disabled,
                tls: None,
                channel_security: HashMap::new(),
                default_security: ChannelSecurity::Any,
                image_compression: ImageCompression::AutoGlz,
                jpeg_wan_compression: WanCompression::Auto,
                zlib_glz_wan_compression: WanCompression::Auto,
                streaming_video: StreamingVideo::Filter,
                agent_mouse: true,
                playback_compression: true,
                ack_window: 20,
                ping_interval: Some(Duration::from_secs(10)),
                ram_hint: 0,
                name: None,
                uuid: None,
            },
            x509_dir: None,
        }
    }

    /// True when clients must present a password.
    pub fn ticketing_enabled(&self) -> bool {
        matches!(self.ticketing, Ticketing::Password { .. })
    }

    /// The TLS requirement for `channel`.
    pub fn security_of(&self, channel: ChannelType) -> ChannelSecurity {
        self.channel_security
            .get(&channel)
            .copied()
            .unwrap_or(self.default_security)
    }
}

/// Builds a [`ServerConfig`]; every setter mirrors a libspice setting.
#[derive(Debug, Clone)]
pub struct ServerConfigBuilder {
    config: ServerConfig,
    x509_dir: Option<PathBuf>,
}

impl ServerConfigBuilder {
    /// Adds a plain listen address (`port=`, `addr=`).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.config.listen.push(addr);
        self
    }

    /// Adds a TLS listen address (`tls-port=`).
    pub fn tls_listen(mut self, addr: SocketAddr) -> Self {
        self.config.tls_listen.push(addr);
        self
    }

    /// Requires this password, optionally until `expires_at` (`spice_server_set_ticket`).
    pub fn password(
        mut self,
        password: impl Into<Vec<u8>>,
        expires_at: Option<SystemTime>,
    ) -> Self {
        self.config.ticketing = Ticketing::Password {
            password: password.into(),
            expires_at,
        };
        self
    }

    /// Turns ticketing off (`disable-ticketing=on`).
    pub fn disable_ticketing(mut self) -> Self {
        self.config.ticketing = Ticketing::Disabled;
        self
    }

    /// Loads `ca-cert.pem`, `server-cert.pem` and `server-key.pem` from `dir` at build time
    /// (`x509-dir=`).
    pub fn x509_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.x509_dir = Some(dir.into());
        self
    }

    /// Uses a ready rustls configuration for the TLS port.
    pub fn tls(mut self, tls: Arc<rustls::ServerConfig>) -> Self {
        self.config.tls = Some(tls);
        self
    }

    /// Sets the TLS requirement of one channel type (`tls-channel=`, `plaintext-channel=`).
    pub fn channel_security(mut self, channel: ChannelType, security: ChannelSecurity) -> Self {
        self.config.channel_security.insert(channel, security);
        self
    }

    /// Sets the TLS requirement of channel types not set one by one.
    pub fn default_security(mut self, security: ChannelSecurity) -> Self {
        self.config.default_security = security;
        self
    }

    /// Image compression (`image-compression=`).
    pub fn image_compression(mut self, c: ImageCompression) -> Self {
        self.config.image_compression = c;
        self
    }

    /// JPEG on WAN (`jpeg-wan-compression=`).
    pub fn jpeg_wan_compression(mut self, c: WanCompression) -> Self {
        self.config.jpeg_wan_compression = c;
        self
    }

    /// zlib over GLZ on WAN (`zlib-glz-wan-compression=`).
    pub fn zlib_glz_wan_compression(mut self, c: WanCompression) -> Self {
        self.config.zlib_glz_wan_compression = c;
        self
    }

    /// Video streaming (`streaming-video=`).
    pub fn streaming_video(mut self, s: StreamingVideo) -> Self {
        self.config.streaming_video = s;
        self
    }

    /// Agent mouse (`agent-mouse=`).
    pub fn agent_mouse(mut self, on: bool) -> Self {
        self.config.agent_mouse = on;
        self
    }

    /// Playback compression (`playback-compression=`).
    pub fn playback_compression(mut self, on: bool) -> Self {
        self.config.playback_compression = on;
        self
    }

    /// ACK window of every channel (0: no flow control).
    pub fn ack_window(mut self, window: u32) -> Self {
        self.config.ack_window = window;
        self
    }

    /// Interval between latency PINGs (`None`: none).
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.ping_interval = interval;
        self
    }

    /// QXL RAM size hint for MAIN_INIT.
    pub fn ram_hint(mut self, bytes: u32) -> Self {
        self.config.ram_hint = bytes;
        self
    }

    /// Guest name (`name=`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = Some(name.into());
        self
    }

    /// Guest UUID.
    pub fn uuid(mut self, uuid: [u8; 16]) -> Self {
        self.config.uuid = Some(uuid);
        self
    }

    /// Checks the settings and loads the certificates.
    pub fn build(mut self) -> Result<ServerConfig, ConfigError> {
        if let Ticketing::Password { password, .. } = &self.config.ticketing {
            spice_proto::ticket::check_password(password)
                .map_err(|e| ConfigError::Password(e.to_string()))?;
        }
        if let Some(dir) = &self.x509_dir {
            self.config.tls = Some(load_x509_dir(dir)?);
        }
        if self.config.listen.is_empty() && self.config.tls_listen.is_empty() {
            return Err(ConfigError::NoListenAddress);
        }
        if !self.config.tls_listen.is_empty() && self.config.tls.is_none() {
            return Err(ConfigError::TlsWithoutCertificates);
        }
        Ok(self.config)
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::Certificate {
        path: path.to_owned(),
        what: format!("cannot read: {e}"),
    })
}

/// Loads a rustls server configuration from an x509 directory as QEMU lays it out:
/// `server-cert.pem` (the chain), `server-key.pem` (PKCS#8, PKCS#1 or SEC1) and
/// `ca-cert.pem` (checked to be readable and appended to the chain when it is not already
/// its last element, so clients can verify against the CA they were given).
pub fn load_x509_dir(dir: &Path) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    let cert_path = dir.join("server-cert.pem");
    let key_path = dir.join("server-key.pem");
    let ca_path = dir.join("ca-cert.pem");
    let parse_certs = |path: &Path| -> Result<Vec<CertificateDer<'static>>, ConfigError> {
        let bytes = read_file(path)?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::Certificate {
                path: path.to_owned(),
                what: format!("bad PEM: {e}"),
            })?;
        if certs.is_empty() {
            return Err(ConfigError::Certificate {
                path: path.to_owned(),
                what: "no certificate in the file".into(),
            });
        }
        Ok(certs)
    };
    let mut chain = parse_certs(&cert_path)?;
    let ca = parse_certs(&ca_path)?;
    let key_bytes = read_file(&key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| ConfigError::Certificate {
        path: key_path.clone(),
        what: format!("no usable private key: {e}"),
    })?;
    if chain.len() == 1 && ca.first() != chain.first() {
        chain.extend(ca);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    // No TLS 1.3 session tickets: spice-gtk reads them and the link reply in one go and then
    // waits on the socket for data OpenSSL already holds (seen: its main channel hung after
    // the link with tickets on, and works without them). Every SPICE channel is a new,
    // short handshake anyway.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_names_parse_and_bad_ones_name_the_option() {
        assert_eq!(
            parse_image_compression("auto_lz").unwrap(),
            ImageCompression::AutoLz
        );
        assert_eq!(
            parse_image_compression("lz4").unwrap(),
            ImageCompression::Lz4
        );
        let e = parse_image_compression("zip").unwrap_err().to_string();
        assert!(e.contains("image-compression") && e.contains("zip"), "{e}");
        assert_eq!(
            parse_wan_compression("jpeg-wan-compression", "always").unwrap(),
            WanCompression::Always
        );
        assert!(parse_wan_compression("x", "sometimes").is_err());
        assert_eq!(parse_streaming_video("all").unwrap(), StreamingVideo::All);
        assert!(parse_streaming_video("some").is_err());
    }

    #[test]
    fn build_checks() {
        assert!(matches!(
            ServerConfig::builder().build(),
            Err(ConfigError::NoListenAddress)
        ));
        let a: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert!(matches!(
            ServerConfig::builder().tls_listen(a).build(),
            Err(ConfigError::TlsWithoutCertificates)
        ));
        assert!(matches!(
            ServerConfig::builder()
                .listen(a)
                .password([b'x'; 61], None)
                .build(),
            Err(ConfigError::Password(_))
        ));
        let e = ServerConfig::builder()
            .listen(a)
            .x509_dir("/nonexistent/x509")
            .build()
            .unwrap_err();
        assert!(
            matches!(e, ConfigError::Certificate { .. })
                && e.to_string().contains("server-cert.pem"),
            "{e}"
        );
        let c = ServerConfig::builder()
            .listen(a)
            .channel_security(ChannelType::MAIN, ChannelSecurity::Secure)
            .build()
            .unwrap();
        assert_eq!(c.security_of(ChannelType::MAIN), ChannelSecurity::Secure);
        assert_eq!(c.security_of(ChannelType::INPUTS), ChannelSecurity::Any);
        assert!(!c.ticketing_enabled());
    }
}
