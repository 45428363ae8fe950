//! `nokv serve`: open (or create) the volume, serve it until SIGINT or SIGTERM, close it.
//!
//! Shutdown contract: the first signal starts a clean close ([`Volume::close`] publishes
//! pending writes and makes metadata durable) and the process exits 0 once it is done. A
//! second signal during the close gives up on it and exits 1, for a close stuck on an
//! unreachable object store; the volume then recovers as after a crash.

use std::io::Write;
use std::path::Path;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::{info, warn};

use crate::args::ServeArgs;
use crate::error::CliError;
use crate::open::{open, process_env, volume_config, Create};

/// Runs `nokv serve` to completion.
pub fn serve(data: &Path, args: &ServeArgs) -> Result<(), CliError> {
    crate::init_logging("info")?;
    let cfg = volume_config(data, &args.s3, process_env)?;
    let rt = crate::runtime()?;
    let result = rt.block_on(async {
        // Registered before the (possibly slow) open, so a signal during it is not lost.
        let mut stop = StopSignals::new()?;
        let volume = open(&cfg, Create::IfMissing)?;
        info!(
            volume = %volume.id(),
            data_dir = %volume.data_dir().display(),
            objects = %volume.objects(),
            "volume open"
        );

        // NFS frontend: issue 4. Start the NFS server over `volume.fs()` here and stop it
        // (draining in-flight requests) before `volume.close()` below.

        let mut out = std::io::stdout().lock();
        // The server runs on even if nobody reads stdout any more.
        let _ = writeln!(
            out,
            "nokv: serving volume {} from {} (objects: {}); press Ctrl-C to stop",
            volume.id(),
            volume.data_dir().display(),
            volume.objects()
        );
        let _ = out.flush();
        drop(out);

        let name = stop.next().await;
        info!(signal = name, "stopping: closing volume");
        tokio::select! {
            closed = volume.close() => closed.map_err(CliError::core("closing volume"))?,
            again = stop.next() => {
                warn!(signal = again, "second signal: abandoning the close");
                return Err(CliError::CloseAbandoned(again));
            }
        }
        info!("volume closed");
        Ok(())
    });
    crate::shutdown_runtime(rt);
    result
}

/// SIGINT and SIGTERM as one stream.
struct StopSignals {
    int: Signal,
    term: Signal,
}

impl StopSignals {
    fn new() -> Result<Self, CliError> {
        let listen = |kind| signal(kind).map_err(CliError::io("installing signal handlers"));
        Ok(StopSignals {
            int: listen(SignalKind::interrupt())?,
            term: listen(SignalKind::terminate())?,
        })
    }

    /// Waits for the next stop signal and names it.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}
