//! A recording TCP proxy on 127.0.0.1.
//!
//! Each accepted connection is forwarded to the target; every byte read in either direction is
//! appended to that connection's record (before it is forwarded, so the recorded order follows
//! causality) and the proxy parses nothing.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::PeerError;
use crate::net::LOOPBACK;
use crate::recording::{Chunk, Connection, Direction, Recording};

const BUF: usize = 64 * 1024;

#[derive(Default)]
struct State {
    recording: Recording,
    sockets: Vec<TcpStream>,
    pumps: Vec<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
    /// Pump threads still running.
    live_pumps: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A pump that panicked cannot leave the state half-updated in a harmful way.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running recording proxy; stop it with [`RecordingProxy::stop`] to get the [`Recording`].
/// Dropping it closes every connection and joins its threads.
pub struct RecordingProxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RecordingProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingProxy")
            .field("addr", &self.addr)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl RecordingProxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `target`.
    pub fn start(target: SocketAddr) -> Result<Self, PeerError> {
        let listener = TcpListener::bind((LOOPBACK, 0))
            .map_err(|e| PeerError::io("binding the proxy listener", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| PeerError::io("proxy local_addr", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| PeerError::io("proxy listener nonblocking", e))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
            live_pumps: AtomicUsize::new(0),
        });
        let sh = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(&listener, target, &sh))
            .map_err(|e| PeerError::io("spawning the proxy thread", e))?;
        tracing::debug!(%addr, %target, "recording proxy started");
        Ok(Self {
            addr,
            target,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn connection_count(&self) -> usize {
        self.shared.lock().recording.connections.len()
    }

    /// Waits until every accepted connection has been closed by both ends (or `limit` passes);
    /// returns whether they all were.
    pub fn wait_all_closed(&self, limit: Duration) -> bool {
        let start = Instant::now();
        loop {
            if self.shared.live_pumps.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let pumps = {
            let mut st = self.shared.lock();
            for s in &st.sockets {
                let _ = s.shutdown(Shutdown::Both);
            }
            std::mem::take(&mut st.pumps)
        };
        for p in pumps {
            let _ = p.join();
        }
    }

    /// Stops accepting, closes every connection, joins the threads and returns what was seen.
    pub fn stop(mut self) -> Recording {
        self.shutdown();
        std::mem::take(&mut self.shared.lock().recording)
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: &TcpListener, target: SocketAddr, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, peer)) => {
                if let Err(e) = start_connection(client, target, shared) {
                    tracing::warn!(%peer, "proxy could not forward a connection: {e}");
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                tracing::warn!("proxy accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn start_connection(
    client: TcpStream,
    target: SocketAddr,
    shared: &Arc<Shared>,
) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    let server = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut st = shared.lock();
    // Fewer than 2^32 connections in any test.
    let index = st.recording.connections.len() as u32;
    st.recording.connections.push(Connection {
        index,
        ..Connection::default()
    });
    st.sockets.push(client.try_clone()?);
    st.sockets.push(server.try_clone()?);
    for (src, dst, dir) in [
        (
            client.try_clone()?,
            server.try_clone()?,
            Direction::ClientToServer,
        ),
        (server, client, Direction::ServerToClient),
    ] {
        let sh = Arc::clone(shared);
        shared.live_pumps.fetch_add(1, Ordering::SeqCst);
        let h = std::thread::Builder::new()
            .name(format!("proxy-{index}-{dir:?}"))
            .spawn(move || {
                pump(src, dst, index, dir, &sh);
                sh.live_pumps.fetch_sub(1, Ordering::SeqCst);
            });
        match h {
            Ok(h) => st.pumps.push(h),
            Err(e) => {
                shared.live_pumps.fetch_sub(1, Ordering::SeqCst);
                return Err(e);
            }
        }
    }
    tracing::debug!(index, "proxy connection opened");
    Ok(())
}

fn pump(mut src: TcpStream, mut dst: TcpStream, index: u32, dir: Direction, shared: &Shared) {
    let mut buf = vec![0u8; BUF];
    loop {
        match src.read(&mut buf) {
            Ok(0) => {
                // Half-close: the other direction may still carry data.
                let _ = dst.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                {
                    let mut st = shared.lock();
                    if let Some(c) = st.recording.connections.get_mut(index as usize) {
                        match dir {
                            Direction::ClientToServer => &mut c.client_to_server,
                            Direction::ServerToClient => &mut c.server_to_client,
                        }
                        .extend_from_slice(&buf[..n]);
                    }
                    st.recording.chunks.push(Chunk {
                        connection: index,
                        direction: dir,
                        // n <= BUF
                        len: n as u32,
                    });
                }
                if dst.write_all(&buf[..n]).is_err() {
                    let _ = src.shutdown(Shutdown::Both);
                    let _ = dst.shutdown(Shutdown::Both);
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                let _ = src.shutdown(Shutdown::Both);
                let _ = dst.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server that upper-cases, closing after EOF.
    fn echo_server() -> (SocketAddr, JoinHandle<()>) {
        let l = TcpListener::bind((LOOPBACK, 0)).unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = [0u8; 256];
                loop {
                    let n = s.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    s.write_all(&buf[..n].to_ascii_uppercase()).unwrap();
                }
            }
        });
        (addr, h)
    }

    #[test]
    fn records_both_directions_per_connection() {
        let (addr, server) = echo_server();
        let proxy = RecordingProxy::start(addr).unwrap();
        for msg in [&b"first"[..], b"second one"] {
            let mut c = TcpStream::connect(proxy.addr()).unwrap();
            c.write_all(msg).unwrap();
            let mut back = vec![0u8; msg.len()];
            c.read_exact(&mut back).unwrap();
            assert_eq!(back, msg.to_ascii_uppercase());
            c.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty());
        }
        assert!(proxy.wait_all_closed(Duration::from_secs(5)));
        assert_eq!(proxy.connection_count(), 2);
        let rec = proxy.stop();
        server.join().unwrap();
        assert_eq!(rec.connections.len(), 2);
        assert_eq!(rec.connections[0].index, 0);
        assert_eq!(rec.connections[0].client_to_server, b"first");
        assert_eq!(rec.connections[0].server_to_client, b"FIRST");
        assert_eq!(rec.connections[1].index, 1);
        assert_eq!(rec.connections[1].client_to_server, b"second one");
        assert_eq!(rec.connections[1].server_to_client, b"SECOND ONE");
        // Causality: for each connection the client's first chunk precedes the server's.
        let first = |c: u32, d: Direction| {
            rec.chunks
                .iter()
                .position(|ch| ch.connection == c && ch.direction == d)
                .unwrap()
        };
        assert!(first(0, Direction::ClientToServer) < first(0, Direction::ServerToClient));
        assert!(first(0, Direction::ServerToClient) < first(1, Direction::ClientToServer));
        assert_eq!(Recording::from_bytes(&rec.to_bytes()).unwrap(), rec);
    }

    #[test]
    fn stop_closes_open_connections() {
        let l = TcpListener::bind((LOOPBACK, 0)).unwrap();
        let proxy = RecordingProxy::start(l.local_addr().unwrap()).unwrap();
        let mut c = TcpStream::connect(proxy.addr()).unwrap();
        let (_server_side, _) = l.accept().unwrap();
        c.write_all(b"abc").unwrap();
        let start = Instant::now();
        while proxy.shared.lock().recording.chunks.is_empty() {
            assert!(start.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!proxy.wait_all_closed(Duration::from_millis(50)));
        let rec = proxy.stop();
        assert_eq!(rec.connections[0].client_to_server, b"abc");
        let mut rest = Vec::new();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(c.read_to_end(&mut rest).unwrap(), 0);
    }
}
