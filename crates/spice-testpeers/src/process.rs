//! Finding external programs (the "peer missing" rule) and running them with a time limit.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::PeerError;

/// The command that installs every real peer (run as root from the repository root).
pub const INSTALL_HINT: &str = "run `scripts/install-peers.sh` as root (it runs `apt-get install -y --no-install-recommends \
qemu-system-x86 qemu-system-gui spice-client-gtk gir1.2-spiceclientglib-2.0 python3-gi xvfb virt-viewer \
spice-html5 chromium imagemagick`)";

/// The Debian package that ships `program`, for the messages of [`require_program`].
pub fn debian_package_of(program: &str) -> &'static str {
    match program {
        "qemu-system-x86_64" => "qemu-system-x86 (+ qemu-system-gui for -spice)",
        "spicy" | "spicy-screenshot" | "spicy-stats" => "spice-client-gtk",
        "remote-viewer" => "virt-viewer",
        "Xvfb" => "xvfb",
        "chromium" => "chromium",
        "import" | "convert" => "imagemagick",
        "node" | "npm" => "nodejs (npm comes with it)",
        "/usr/bin/python3" => "python3 (+ python3-gi gir1.2-spiceclientglib-2.0)",
        _ => "(see PEERS.md)",
    }
}

/// Looks `program` up on `PATH` (a name containing `/` is checked as a path).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let is_exec = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return is_exec(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_exec(p))
}

/// Returns the path of `program`, or **panics** naming the program, its Debian package and the
/// install command. A real-peer test must fail loudly, never skip, when its peer is missing.
pub fn require_program(program: &str) -> PathBuf {
    match find_program(program) {
        Some(p) => p,
        None => panic!(
            "real peer `{program}` is not installed (Debian package {}); {INSTALL_HINT}. \
             Real-peer tests never skip.",
            debian_package_of(program)
        ),
    }
}

/// What a finished program did.
#[derive(Debug, Clone)]
pub struct ProgramOutput {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl ProgramOutput {
    /// True when the program exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> Option<JoinHandle<String>> {
    r.map(|mut r| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            // A read error just ends the capture; the exit status tells the story.
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    })
}

fn join(h: Option<JoinHandle<String>>) -> String {
    h.and_then(|h| h.join().ok()).unwrap_or_default()
}

/// Waits for `child` with a time limit, polling; kills it on timeout.
pub(crate) fn wait_timeout(
    child: &mut Child,
    limit: Duration,
) -> Result<Option<ExitStatus>, PeerError> {
    let start = Instant::now();
    loop {
        if let Some(st) = child
            .try_wait()
            .map_err(|e| PeerError::io("waiting for child", e))?
        {
            return Ok(Some(st));
        }
        if start.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` (stdin closed, stdout/stderr captured) and waits at most `limit`.
///
/// The program is looked up with [`require_program`] first, so a missing program panics.
/// On timeout the process is killed and [`PeerError::Timeout`] is returned, its message holding
/// what the program had printed.
pub fn run_with_timeout(
    program: &str,
    args: &[&std::ffi::OsStr],
    envs: &[(&str, &str)],
    limit: Duration,
) -> Result<ProgramOutput, PeerError> {
    let path = require_program(program);
    let mut cmd = Command::new(path);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    tracing::debug!(program, ?args, "running");
    let mut child = cmd
        .spawn()
        .map_err(|e| PeerError::io(format!("spawning {program}"), e))?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_timeout(&mut child, limit)?;
    let stdout = join(out);
    let stderr = join(err);
    match status {
        Some(status) => Ok(ProgramOutput {
            status,
            stdout,
            stderr,
        }),
        None => Err(PeerError::Timeout {
            what: format!("{program} to exit (stdout: {stdout:?}, stderr: {stderr:?})"),
            after: limit,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh() {
        assert!(find_program("sh").is_some());
        assert!(find_program("definitely-not-a-program-xyz").is_none());
    }

    #[test]
    #[should_panic(expected = "definitely-not-a-program-xyz")]
    fn missing_program_panics_with_its_name() {
        require_program("definitely-not-a-program-xyz");
    }

    #[test]
    fn missing_program_message_names_install_command() {
        let r = std::panic::catch_unwind(|| require_program("definitely-not-a-program-xyz"));
        let msg = r.unwrap_err();
        let msg = msg.downcast_ref::<String>().expect("string panic");
        assert!(msg.contains("scripts/install-peers.sh"), "{msg}");
        assert!(msg.contains("never skip"), "{msg}");
    }

    #[test]
    fn run_with_timeout_captures_and_times_out() {
        let o = run_with_timeout(
            "sh",
            &["-c".as_ref(), "echo out; echo err >&2; exit 3".as_ref()],
            &[],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(o.status.code(), Some(3));
        assert_eq!(o.stdout, "out\n");
        assert_eq!(o.stderr, "err\n");
        let e = run_with_timeout(
            "sh",
            &["-c".as_ref(), "exec sleep 5".as_ref()],
            &[],
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(e, PeerError::Timeout { .. }), "{e}");
    }
}
