//! Loopback ports: pick a free one, wait until one accepts connections.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::PeerError;

/// `127.0.0.1`, the only address the peers are ever bound to.
pub const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Picks a TCP port on 127.0.0.1 that is free right now (bind to port 0, read it, release it).
///
/// Another process may take it before the caller binds it; [`crate::qemu::QemuBuilder::spawn`]
/// retries with fresh ports when QEMU fails to bind.
pub fn free_port() -> Result<u16, PeerError> {
    let l = TcpListener::bind((LOOPBACK, 0))
        .map_err(|e| PeerError::io("binding 127.0.0.1:0 to pick a port", e))?;
    let port = l
        .local_addr()
        .map_err(|e| PeerError::io("local_addr of a fresh listener", e))?
        .port();
    Ok(port)
}

/// Tries to connect to `addr` until it succeeds or `limit` passes. The probe connection is
/// closed at once.
pub fn wait_for_port(addr: SocketAddr, limit: Duration) -> Result<(), PeerError> {
    let start = Instant::now();
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if start.elapsed() >= limit {
            return Err(PeerError::Timeout {
                what: format!("{addr} to accept connections"),
                after: limit,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable_and_wait_sees_listener() {
        let port = free_port().unwrap();
        assert_ne!(port, 0);
        let l = TcpListener::bind((LOOPBACK, port)).unwrap();
        wait_for_port(l.local_addr().unwrap(), Duration::from_secs(2)).unwrap();
        drop(l);
        let e = wait_for_port(
            SocketAddr::from((LOOPBACK, port)),
            Duration::from_millis(100),
        );
        assert!(matches!(e, Err(PeerError::Timeout { .. })));
    }
}
