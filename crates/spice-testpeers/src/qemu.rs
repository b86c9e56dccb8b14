//! QEMU with the real spice-server, on 127.0.0.1, killed on drop.
//!
//! ```no_run
//! use std::time::Duration;
//! use spice_testpeers::qemu::QemuBuilder;
//!
//! let mut qemu = QemuBuilder::new().image_compression("quic").spawn().unwrap();
//! qemu.settle(Duration::from_secs(4)).unwrap(); // let the firmware draw, then `stop`
//! let truth = qemu.screendump().unwrap();
//! // ... connect a client to 127.0.0.1:qemu.port() and compare with `truth`
//! # let _ = truth;
//! ```

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::PeerError;
use crate::net::{LOOPBACK, free_port, wait_for_port};
use crate::ppm::Ppm;
use crate::process::{INSTALL_HINT, require_program};
use crate::qmp::Qmp;

/// The QEMU binary used.
pub const QEMU: &str = "qemu-system-x86_64";

/// How many times [`QemuBuilder::spawn`] tries fresh ports when QEMU cannot bind them.
const BIND_ATTEMPTS: usize = 4;

/// Options for a QEMU + spice-server instance. Without [`QemuBuilder::password`] the server runs
/// with `disable-ticketing=on`.
#[derive(Debug, Clone)]
pub struct QemuBuilder {
    image_compression: Option<String>,
    streaming_video: Option<String>,
    password: Option<String>,
    x509_dir: Option<PathBuf>,
    spice_options: Vec<String>,
    extra_args: Vec<String>,
    memory_mib: u32,
    start_timeout: Duration,
    port: Option<u16>,
}

impl Default for QemuBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl QemuBuilder {
    /// The defaults: 128 MiB, QXL VGA, no disk, ticketing disabled, server defaults for
    /// compression, a 60 s start limit.
    pub fn new() -> Self {
        Self {
            image_compression: None,
            streaming_video: None,
            password: None,
            x509_dir: None,
            spice_options: Vec::new(),
            extra_args: Vec::new(),
            memory_mib: 128,
            start_timeout: Duration::from_secs(60),
            port: None,
        }
    }

    /// `image-compression=` (`off|quic|lz|glz|auto_glz|auto_lz`).
    pub fn image_compression(mut self, mode: &str) -> Self {
        self.image_compression = Some(mode.to_owned());
        self
    }

    /// `streaming-video=` (`off|all|filter`).
    pub fn streaming_video(mut self, mode: &str) -> Self {
        self.streaming_video = Some(mode.to_owned());
        self
    }

    /// Ticket authentication with `password`, passed through `-object secret` (read from a
    /// file in the instance's temp dir) and `password-secret=`.
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// No ticket authentication (`disable-ticketing=on`, the default): undoes [`Self::password`].
    pub fn disable_ticketing(mut self) -> Self {
        self.password = None;
        self
    }

    /// Also listen for TLS on a free port (`tls-port=`), with certificates from `dir`
    /// (`x509-dir=`: ca-cert.pem, server-cert.pem, server-key.pem).
    pub fn tls(mut self, x509_dir: impl Into<PathBuf>) -> Self {
        self.x509_dir = Some(x509_dir.into());
        self
    }

    /// Any further `-spice` suboption, e.g. `"jpeg-wan-compression=always"`.
    pub fn spice_option(mut self, option: &str) -> Self {
        self.spice_options.push(option.to_owned());
        self
    }

    /// Extra QEMU arguments (chardevs, audio devices, ...), appended as given.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The agent channel: virtio-serial + spicevmc `vdagent` port.
    pub fn with_agent_channel(self) -> Self {
        self.args([
            "-device",
            "virtio-serial",
            "-chardev",
            "spicevmc,id=vdagent,name=vdagent",
            "-device",
            "virtserialport,chardev=vdagent,name=com.redhat.spice.0",
        ])
    }

    /// SPICE audio: playback and record channels (intel-hda + hda-duplex).
    pub fn with_audio(self) -> Self {
        self.args([
            "-audiodev",
            "spice,id=snd",
            "-device",
            "intel-hda",
            "-device",
            "hda-duplex,audiodev=snd",
        ])
    }

    /// Guest RAM in MiB (default 128).
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    /// Use this plain SPICE port instead of a free one picked at run time (no retry when it is
    /// taken: [`Self::spawn`] then fails with [`PeerError::EarlyExit`]).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// How long [`Self::spawn`] waits for QMP and the SPICE port (default 60 s).
    pub fn start_timeout(mut self, limit: Duration) -> Self {
        self.start_timeout = limit;
        self
    }

    fn command(&self, dir: &Path, port: u16, tls_port: Option<u16>) -> Result<Command, PeerError> {
        let mut spice = vec![format!("port={port}"), format!("addr={LOOPBACK}")];
        let mut cmd = Command::new(require_program(QEMU));
        cmd.args([
            "-display",
            "none",
            "-vga",
            "qxl",
            "-m",
            &self.memory_mib.to_string(),
            "-monitor",
            "none",
            "-serial",
            "none",
            "-no-reboot",
        ]);
        match &self.password {
            Some(pw) => {
                let secret = dir.join("spice-password");
                std::fs::write(&secret, pw)
                    .map_err(|e| PeerError::io("writing the SPICE password file", e))?;
                cmd.arg("-object")
                    .arg(format!("secret,id=spicepw,file={}", qemu_escape(&secret)));
                spice.push("password-secret=spicepw".to_owned());
            }
            None => spice.push("disable-ticketing=on".to_owned()),
        }
        if let (Some(tp), Some(d)) = (tls_port, &self.x509_dir) {
            spice.push(format!("tls-port={tp}"));
            spice.push(format!("x509-dir={}", qemu_escape(d)));
        }
        if let Some(m) = &self.image_compression {
            spice.push(format!("image-compression={m}"));
        }
        if let Some(m) = &self.streaming_video {
            spice.push(format!("streaming-video={m}"));
        }
        spice.extend(self.spice_options.iter().cloned());
        cmd.arg("-spice").arg(spice.join(","));
        cmd.arg("-qmp").arg(format!(
            "unix:{},server=on,wait=off",
            qemu_escape(&dir.join("qmp.sock"))
        ));
        cmd.args(&self.extra_args);
        Ok(cmd)
    }

    /// Starts QEMU, connects QMP and waits until the SPICE port accepts connections.
    ///
    /// Panics (peer-missing rule) when QEMU or its SPICE module is not installed. When QEMU
    /// cannot bind its port (another process took it), it retries with fresh ports.
    pub fn spawn(&self) -> Result<Qemu, PeerError> {
        let mut last = None;
        for _ in 0..BIND_ATTEMPTS {
            match self.spawn_once()? {
                Ok(q) => return Ok(q),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(PeerError::Timeout {
            what: "QEMU to start".into(),
            after: self.start_timeout,
        }))
    }

    /// Outer error: give up. Inner error: a port clash, worth a retry.
    fn spawn_once(&self) -> Result<Result<Qemu, PeerError>, PeerError> {
        let dir = tempfile::Builder::new()
            .prefix("spice-testpeers-qemu-")
            .tempdir()
            .map_err(|e| PeerError::io("creating QEMU temp dir", e))?;
        let port = match self.port {
            Some(p) => p,
            None => free_port()?,
        };
        let tls_port = match self.x509_dir {
            Some(_) => Some(free_port()?),
            None => None,
        };
        let log_path = dir.path().join("qemu.log");
        let log = File::create(&log_path).map_err(|e| PeerError::io("creating qemu.log", e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| PeerError::io("cloning qemu.log handle", e))?;
        let mut cmd = self.command(dir.path(), port, tls_port)?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        tracing::debug!(?cmd, "starting QEMU");
        let child = cmd
            .spawn()
            .map_err(|e| PeerError::io(format!("spawning {QEMU}"), e))?;
        let mut qemu = Qemu {
            child,
            port,
            tls_port,
            qmp: None,
            log_path,
            dumps: 0,
            dir,
        };
        match qemu.wait_ready(self.start_timeout) {
            Ok(()) => Ok(Ok(qemu)),
            Err(e) => {
                let log = qemu.log();
                if log.contains("-spice: invalid option")
                    || log.contains("no option group 'spice'")
                    || log.contains("spice is not supported")
                    || log.contains("'qxl' is not a valid")
                    || log.contains("QXL VGA not available")
                {
                    panic!(
                        "{QEMU} lacks SPICE/QXL support (Debian packages qemu-system-x86 and \
                         qemu-system-gui); {INSTALL_HINT}. Real-peer tests never skip.\nQEMU said:\n{log}"
                    );
                }
                let clash = log.contains("Failed to open SPICE sockets")
                    || log.contains("Address already in use");
                if clash && self.port.is_none() {
                    tracing::warn!(port, "QEMU could not bind, retrying: {log}");
                    return Ok(Err(e));
                }
                Err(e)
            }
        }
    }
}

/// Escapes a path for QEMU's option syntax (a comma is written twice).
fn qemu_escape(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// A running QEMU with spice-server. Killed (and its temp dir removed) on drop.
#[derive(Debug)]
pub struct Qemu {
    child: Child,
    port: u16,
    tls_port: Option<u16>,
    qmp: Option<Qmp>,
    log_path: PathBuf,
    dumps: u32,
    // Declared last: removed after the process is gone.
    dir: tempfile::TempDir,
}

impl Qemu {
    fn check_alive(&mut self) -> Result<(), PeerError> {
        if let Some(st) = self
            .child
            .try_wait()
            .map_err(|e| PeerError::io("polling QEMU", e))?
        {
            return Err(PeerError::EarlyExit {
                program: QEMU.into(),
                status: st.to_string(),
                stderr: self.log(),
            });
        }
        Ok(())
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), PeerError> {
        let start = Instant::now();
        let sock = self.dir.path().join("qmp.sock");
        // QMP first: the socket exists once QEMU has parsed its options.
        while !sock.exists() {
            self.check_alive()?;
            if start.elapsed() >= limit {
                return Err(PeerError::Timeout {
                    what: format!("QMP socket {}", sock.display()),
                    after: limit,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.qmp = Some(Qmp::connect(&sock, limit.saturating_sub(start.elapsed()))?);
        loop {
            self.check_alive()?;
            let left = limit.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(PeerError::Timeout {
                    what: format!("SPICE port {}", self.port),
                    after: limit,
                });
            }
            if wait_for_port(self.spice_addr(), left.min(Duration::from_millis(500))).is_ok() {
                return Ok(());
            }
        }
    }

    /// The plain SPICE port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS SPICE port, when [`QemuBuilder::tls`] was used.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// `127.0.0.1:port()`.
    pub fn spice_addr(&self) -> SocketAddr {
        SocketAddr::from((LOOPBACK, self.port))
    }

    /// The instance's temp dir (QMP socket, log, screendumps); removed on drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What QEMU wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The QMP session.
    pub fn qmp(&mut self) -> &mut Qmp {
        // Set by wait_ready before a Qemu is handed out.
        self.qmp
            .as_mut()
            .expect("QMP is connected once spawn returned")
    }

    /// Lets the guest run for `boot` (the firmware draws its screens), then pauses it with
    /// QMP `stop` so the picture no longer changes.
    pub fn settle(&mut self, boot: Duration) -> Result<(), PeerError> {
        std::thread::sleep(boot);
        self.check_alive()?;
        self.qmp().stop()
    }

    /// QMP `screendump` into the temp dir, read back as a [`Ppm`].
    pub fn screendump(&mut self) -> Result<Ppm, PeerError> {
        self.dumps += 1;
        let path = self
            .dir
            .path()
            .join(format!("screendump-{}.ppm", self.dumps));
        self.qmp().screendump(&path)?;
        Ppm::read(&path).map_err(|e| PeerError::Qmp {
            command: "screendump".into(),
            message: format!("unreadable dump {}: {e}", path.display()),
        })
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
