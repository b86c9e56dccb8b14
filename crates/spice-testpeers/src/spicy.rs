//! spice-gtk's `spicy-screenshot`: connect, wait for the primary surface, write a PPM.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use crate::PeerError;
use crate::process::{ProgramOutput, run_with_timeout};

/// The program name.
pub const SPICY_SCREENSHOT: &str = "spicy-screenshot";

/// The time limit of [`spicy_screenshot`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `spicy-screenshot -h host -p port [-w password] -o out` with [`DEFAULT_TIMEOUT`].
///
/// Returns its exit status and output (it exits non-zero when the link or the main channel
/// fails); [`PeerError::Timeout`] when it hangs (it is killed). Panics when it is not installed.
pub fn spicy_screenshot(
    host: &str,
    port: u16,
    password: Option<&str>,
    out: &Path,
) -> Result<ProgramOutput, PeerError> {
    spicy_screenshot_with(host, port, password, out, &[], DEFAULT_TIMEOUT)
}

/// [`spicy_screenshot`] with extra environment variables (e.g. `("SPICE_DEBUG", "1")`) and an
/// explicit time limit.
pub fn spicy_screenshot_with(
    host: &str,
    port: u16,
    password: Option<&str>,
    out: &Path,
    envs: &[(&str, &str)],
    limit: Duration,
) -> Result<ProgramOutput, PeerError> {
    let port = port.to_string();
    let mut args: Vec<&OsStr> = vec![
        "-h".as_ref(),
        host.as_ref(),
        "-p".as_ref(),
        port.as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ];
    if let Some(pw) = password {
        args.push("-w".as_ref());
        args.push(pw.as_ref());
    }
    run_with_timeout(SPICY_SCREENSHOT, &args, envs, limit)
}
