//! `spice://` URIs as remote-viewer takes them.
//!
//! - `spice://HOST:PORT`, `spice://HOST?port=PORT`, `spice://[IPv6]:PORT`
//! - query keys: `port`, `tls-port`, `password` (percent-decoded); unknown keys are ignored
//!   (remote-viewer warns and goes on)
//! - `spice+tls://HOST:PORT`: the authority port is the TLS port
//!
//! A port in the authority and a different `port=` in the query is an error, as in
//! spice-gtk's URI parser.

/// A parsed SPICE URI.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpiceUri {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// Plain TCP port.
    pub port: Option<u16>,
    /// TLS port.
    pub tls_port: Option<u16>,
    /// Password (ticket), if given.
    pub password: Option<String>,
}

/// Why a URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// Not `spice://` or `spice+tls://`.
    #[error("unsupported URI scheme in {0:?} (expected spice:// or spice+tls://)")]
    Scheme(String),
    /// No host.
    #[error("no host in the URI")]
    NoHost,
    /// A port that is not a number in 1..=65535.
    #[error("invalid port {0:?}")]
    Port(String),
    /// Neither a port nor a TLS port.
    #[error("no port or tls-port in the URI")]
    NoPort,
    /// The authority port and `port=` disagree.
    #[error("conflicting ports {0} and {1}")]
    ConflictingPorts(u16, u16),
    /// A bad percent escape or non-UTF-8 after decoding.
    #[error("bad percent-encoding in {0:?}")]
    Encoding(String),
    /// An IPv6 literal without its closing bracket.
    #[error("unterminated IPv6 literal")]
    Ipv6,
}

fn parse_port(s: &str) -> Result<u16, UriError> {
    match s.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(UriError::Port(s.to_owned())),
    }
}

/// Decodes `%XX` escapes (and `+` is kept as is, as in RFC 3986 URIs).
fn percent_decode(s: &str) -> Result<String, UriError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| UriError::Encoding(s.to_owned()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UriError::Encoding(s.to_owned()))
}

impl SpiceUri {
    /// Parses a URI.
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        let (tls_scheme, rest) = if let Some(r) = strip_prefix_ci(uri, "spice://") {
            (false, r)
        } else if let Some(r) = strip_prefix_ci(uri, "spice+tls://") {
            (true, r)
        } else {
            return Err(UriError::Scheme(uri.to_owned()));
        };
        let (authority, query) = match rest.find('?') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        // remote-viewer tolerates a trailing slash or path.
        let authority = authority.split('/').next().unwrap_or("");
        let (host, auth_port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6.find(']').ok_or(UriError::Ipv6)?;
            let after = &v6[end + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) if !p.is_empty() => Some(parse_port(p)?),
                _ => None,
            };
            (v6[..end].to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) if !p.is_empty() => (h.to_owned(), Some(parse_port(p)?)),
                Some((h, _)) => (h.to_owned(), None),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err(UriError::NoHost);
        }
        let mut u = SpiceUri {
            host: percent_decode(&host)?,
            ..Default::default()
        };
        if tls_scheme {
            u.tls_port = auth_port;
        } else {
            u.port = auth_port;
        }
        for pair in query.unwrap_or("").split(['&', ';']) {
            if pair.is_empty() {
                continue;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_decode(v)?;
            match k {
                "port" => {
                    let p = parse_port(&v)?;
                    match u.port {
                        Some(old) if old != p && !tls_scheme => {
                            return Err(UriError::ConflictingPorts(old, p));
                        }
                        _ => u.port = Some(p),
                    }
                }
                "tls-port" => {
                    let p = parse_port(&v)?;
                    match u.tls_port {
                        Some(old) if old != p => return Err(UriError::ConflictingPorts(old, p)),
                        _ => u.tls_port = Some(p),
                    }
                }
                "password" => u.password = Some(v),
                other => tracing::warn!(key = other, "unknown spice URI parameter ignored"),
            }
        }
        if u.port.is_none() && u.tls_port.is_none() {
            return Err(UriError::NoPort);
        }
        Ok(u)
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

impl std::str::FromStr for SpiceUri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_remote_viewer_takes() {
        let u = SpiceUri::parse("spice://127.0.0.1:5930").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.tls_port),
            ("127.0.0.1", Some(5930), None)
        );
        let u = SpiceUri::parse("spice://host?port=5900&tls-port=5901&password=a%20b%26c").unwrap();
        assert_eq!(u.port, Some(5900));
        assert_eq!(u.tls_port, Some(5901));
        assert_eq!(u.password.as_deref(), Some("a b&c"));
        let u = SpiceUri::parse("spice://[::1]:5900/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", Some(5900)));
        let u = SpiceUri::parse("spice://h?tls-port=5901").unwrap();
        assert_eq!((u.port, u.tls_port), (None, Some(5901)));
        let u = SpiceUri::parse("SPICE+TLS://h:5901").unwrap();
        assert_eq!((u.port, u.tls_port), (None, Some(5901)));
        let u = SpiceUri::parse("spice://h:5900?port=5900&x=1").unwrap();
        assert_eq!(u.port, Some(5900));
    }

    #[test]
    fn bad_uris() {
        assert!(matches!(
            SpiceUri::parse("vnc://h:1"),
            Err(UriError::Scheme(_))
        ));
        assert_eq!(SpiceUri::parse("spice://:5900"), Err(UriError::NoHost));
        assert_eq!(SpiceUri::parse("spice://h"), Err(UriError::NoPort));
        assert!(matches!(
            SpiceUri::parse("spice://h:99999"),
            Err(UriError::Port(_))
        ));
        assert!(matches!(
            SpiceUri::parse("spice://h:0"),
            Err(UriError::Port(_))
        ));
        assert_eq!(
            SpiceUri::parse("spice://h:1?port=2"),
            Err(UriError::ConflictingPorts(1, 2))
        );
        assert!(matches!(
            SpiceUri::parse("spice://h:1?password=%zz"),
            Err(UriError::Encoding(_))
        ));
        assert_eq!(SpiceUri::parse("spice://[::1:5900"), Err(UriError::Ipv6));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = SpiceUri::parse(&format!("spice://{s}"));
        }
    }
}
