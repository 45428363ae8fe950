//! The `nokv` command as a library: [`run`] takes the arguments and returns the exit code,
//! so `main.rs` stays a one-liner and tests drive exactly what users run.
//!
//! Output contract: results go to stdout; logs (`tracing`, filtered by `NOKV_LOG`) and
//! errors go to stderr. A failure is a single `nokv: <message>` line on stderr with exit
//! code 1; a usage error exits 2; `--help` and `--version` exit 0.
//!
//! Exit codes: 0 success; 1 the operation failed (including `fsck` finding a broken
//! invariant); 2 usage error.
//!
//! Modules: `args` (the clap surface), `open` (arguments to an open volume), `serve`,
//! `admin` (the admin socket: server and client), `workspace_cmds` (every volume
//! subcommand: request, run through the server or on the opened volume, print), `ops`
//! (requests, their execution on the core, replies and their rendering), `status`,
//! `transfer` (import, export), `hostpath` (host paths inside mounts to volume paths),
//! `progress` (counters and the terminal bar), `error` (the error type and its one-line
//! rendering), `mount` (FUSE mount/umount).

pub mod admin;
mod args;
mod error;
mod hostpath;
mod mount;
mod open;
mod ops;
mod progress;
mod serve;
mod status;
mod transfer;
mod workspace_cmds;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

pub use args::DEFAULT_DATA_DIR;
pub use error::CliError;

use error::one_line;

use args::{Cli, Command};

/// The environment variable holding the log filter (`tracing` `EnvFilter` syntax).
pub const LOG_ENV: &str = "NOKV_LOG";

/// How long a finished command waits for stray runtime tasks before exiting anyway.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(5);

/// Runs the `nokv` command line `args` (program name first) and returns its exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = match &cli.command {
        Command::Serve(a) => serve::serve(&cli.data, a),
        Command::Status(a) => workspace_cmds::status(&cli.data, a),
        Command::Workspaces(a) => workspace_cmds::workspaces(&cli.data, a),
        Command::Clone(a) => workspace_cmds::clone(&cli.data, a),
        Command::Snapshot(a) => workspace_cmds::snapshot(&cli.data, a),
        Command::Snapshots(a) => workspace_cmds::snapshots(&cli.data, a),
        Command::SnapshotDelete(a) => workspace_cmds::snapshot_delete(&cli.data, a),
        Command::Rollback(a) => workspace_cmds::rollback(&cli.data, a),
        Command::Diff(a) => workspace_cmds::diff(&cli.data, a),
        Command::Discard(a) => workspace_cmds::discard(&cli.data, a),
        Command::Promote(a) => workspace_cmds::promote(&cli.data, a),
        Command::Gc(a) => workspace_cmds::gc(&cli.data, a),
        Command::Fsck(a) => workspace_cmds::fsck(&cli.data, a),
        Command::Import(a) => workspace_cmds::import(&cli.data, a),
        Command::Export(a) => workspace_cmds::export(&cli.data, a),
        Command::Mount(a) => mount::mount(&cli.data, a),
        Command::Umount(a) => mount::umount(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error::report(&e.to_string());
            ExitCode::FAILURE
        }
    }
}

/// Makes a panic print one `nokv: internal error` line instead of a message and backtrace
/// hint over several lines. For the binary; a library user keeps its own hook.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("panic");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        error::report(&format!("internal error: {what}{at}"));
    }));
}

/// Help and version go to stdout with exit 0; every other clap error becomes one line.
fn usage_error(e: clap::Error) -> ExitCode {
    if !e.use_stderr() {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    // The rendered error is several paragraphs: "error: ..." (possibly continued on indented
    // lines), tips, "Usage: ...", a pointer to --help. Keep the message, tips and usage.
    let rendered = e.render().to_string();
    let mut paragraphs = rendered.split("\n\n").map(str::trim);
    let first = paragraphs.next().unwrap_or_default();
    let mut message = one_line(first.strip_prefix("error: ").unwrap_or(first));
    for p in paragraphs {
        if p.starts_with("tip: ") {
            message = format!("{message}; {}", one_line(p));
        } else if let Some(usage) = p.strip_prefix("Usage: ") {
            message = format!("{message} (usage: {}; see --help)", one_line(usage));
        }
    }
    error::report(&message);
    ExitCode::from(e.exit_code().clamp(1, 255) as u8)
}

/// Sends `tracing` output to stderr, filtered by `NOKV_LOG` (else `default`).
fn init_logging(default: &str) -> Result<(), CliError> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var(LOG_ENV) {
        Ok(spec) if !spec.trim().is_empty() => {
            EnvFilter::try_new(&spec).map_err(|e| CliError::LogFilter(e.to_string()))?
        }
        _ => EnvFilter::new(default),
    };
    // A subscriber may already be set when `run` is called twice in one process: keep it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
    Ok(())
}

/// The multi-thread runtime a command runs on.
fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("nokv")
        .build()
        .map_err(CliError::io("starting the async runtime"))
}

/// Drops the runtime without hanging on a stray task (a read-ahead still in flight).
fn shutdown_runtime(rt: tokio::runtime::Runtime) {
    rt.shutdown_timeout(RUNTIME_SHUTDOWN);
}

/// Writes a command's result to stdout. A reader that went away (`nokv status | head -1`)
/// is not an error.
fn print_stdout(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::io("writing output")(e))
        }
        _ => Ok(()),
    }
}
