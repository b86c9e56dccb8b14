//! The error type of the peer helpers.

use std::time::Duration;

/// What went wrong while driving a real peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Something did not happen within its time limit.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The limit that was exceeded.
        after: Duration,
    },
    /// A peer process exited before it was ready.
    #[error("{program} exited early ({status}); stderr:\n{stderr}")]
    EarlyExit {
        /// The program's name.
        program: String,
        /// Its exit status, as text.
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// QMP answered with an error or with something that is not QMP.
    #[error("QMP {command}: {message}")]
    Qmp {
        /// The command (or "greeting").
        command: String,
        /// The error class and description, or what was malformed.
        message: String,
    },
}

impl PeerError {
    /// Wraps an I/O error with a short description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
