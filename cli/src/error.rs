//! The CLI's error type and the one place that turns it into output.
//!
//! Every failure the user sees is one line on stderr, `nokv: <message>`, and exit code 1
//! (usage errors, reported by clap, exit 2). Core errors arrive as [`FsError`] and are shown
//! with what the CLI was doing when they happened.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use nokv_core::FsError;

/// Why a subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `--data` names something that exists and is not a directory.
    #[error("--data {}: not a directory", .0.display())]
    DataNotDir(PathBuf),
    /// An inspection command found no volume in `--data`.
    #[error(
        "no volume in {} (`nokv serve --data {}` creates one)",
        .0.display(),
        .0.display()
    )]
    NoVolume(PathBuf),
    /// `serve` was signalled again while closing the volume and gave up on the close.
    #[error("{0} while closing the volume: exiting before the close finished")]
    CloseAbandoned(&'static str),
    /// The NFS server could not listen on `--listen`.
    #[error("cannot listen on {addr}: {err}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        err: std::io::Error,
    },
    /// `NOKV_LOG` is not a valid filter.
    #[error("NOKV_LOG: {0}")]
    LogFilter(String),
    /// A step of the core failed.
    #[error("{}{err}", Prefix(.step))]
    Core {
        /// What the CLI was doing ("" when the core's message says it already).
        step: &'static str,
        /// The core's error.
        err: FsError,
    },
    /// A workspace operation failed; `what` names it with its arguments.
    #[error("{what}: {err}")]
    Op {
        /// The operation, e.g. `clone /base to /forks/a1`.
        what: String,
        /// The core's error.
        err: FsError,
    },
    /// A path argument is neither a volume path nor a host path inside a mount.
    #[error("{0}")]
    BadPath(String),
    /// I/O on a host path (import, export).
    #[error("{}: {err}", .path.display())]
    Host {
        /// The host path.
        path: PathBuf,
        /// The OS error.
        err: std::io::Error,
    },
    /// A host tree cannot be copied as asked (e.g. the source is not a directory).
    #[error("{0}")]
    Transfer(String),
    /// fsck found broken invariants (listed on stdout).
    #[error("fsck: {0} invariant violation(s) found")]
    FsckFailed(usize),
    /// The running server answered with an error.
    #[error("{0}")]
    Remote(String),
    /// The admin socket failed mid-conversation.
    #[error("admin socket {}: {err}", .path.display())]
    Admin {
        /// The socket path.
        path: PathBuf,
        /// What went wrong.
        err: String,
    },
    /// Mounting or unmounting the FUSE frontend failed.
    #[error(transparent)]
    Fuse(nokv_fuse::MountError),
    /// Local I/O outside the core (runtime, signals, terminal).
    #[error("{step}: {err}")]
    Io {
        /// What the CLI was doing.
        step: &'static str,
        /// The OS error.
        err: std::io::Error,
    },
}

impl CliError {
    /// A core error while doing `step`.
    pub fn core(step: &'static str) -> impl FnOnce(FsError) -> CliError {
        move |err| CliError::Core { step, err }
    }

    /// A core error of the operation described by `what`.
    pub fn op(what: impl Into<String>) -> impl FnOnce(FsError) -> CliError {
        let what = what.into();
        move |err| CliError::Op { what, err }
    }

    /// An I/O error on host path `path`.
    pub fn host(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
        move |err| CliError::Host {
            path: path.to_path_buf(),
            err,
        }
    }

    /// An I/O error while doing `step`.
    pub fn io(step: &'static str) -> impl FnOnce(std::io::Error) -> CliError {
        move |err| CliError::Io { step, err }
    }
}

struct Prefix<'a>(&'a str);

impl fmt::Display for Prefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, "{}: ", self.0)
        }
    }
}

/// `message` as a single line: control characters (a holder's command line may contain
/// newlines) become spaces, runs of whitespace one space, no leading or trailing space.
pub fn one_line(message: &str) -> String {
    message
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prints `message` as the single `nokv: ...` line on stderr.
pub fn report(message: &str) {
    eprintln!("nokv: {}", one_line(message));
}

#[cfg(test)]
mod tests {
    use super::*;
    use nokv_core::ErrorKind;

    #[test]
    fn one_line_flattens_control_characters() {
        assert_eq!(one_line("  a\nb\r\n\tc \u{1b}[31m "), "a b c [31m");
        assert_eq!(one_line("plain"), "plain");
    }

    #[test]
    fn core_errors_name_the_step() {
        let e = CliError::core("statfs")(FsError::new(ErrorKind::Io, "disk gone"));
        assert_eq!(e.to_string(), "statfs: I/O error: disk gone");
        let e = CliError::core("")(FsError::new(
            ErrorKind::Busy,
            "volume /v is in use by pid 7",
        ));
        assert_eq!(e.to_string(), "busy: volume /v is in use by pid 7");
    }
}
