//! The volume subcommands (`status`, `clone`, `snapshot`, `diff`, `import`, ...): turn the
//! arguments into an [`ops::Request`], run it on the running server through the admin
//! socket or, when none runs, on the volume opened here, and print the [`Reply`].
//!
//! Order matters for the "bad input changes nothing" contract: arguments are resolved to
//! volume paths before anything is opened, and a direct run closes the volume (making
//! everything durable) whether the operation succeeded or not.

use std::path::Path;

use nokv_core::Caller;

use crate::admin::Client;
use crate::args::{
    CloneArgs, CommonArgs, DiffArgs, ExportArgs, FsckArgs, GcArgs, ImportArgs, PathArgs,
    PromoteArgs, RollbackArgs, SnapshotArgs, SnapshotDeleteArgs, SnapshotsArgs, StatusArgs,
    WorkspacesArgs,
};
use crate::error::CliError;
use crate::hostpath::{self, Resolver};
use crate::open::{open, process_env, volume_config, Create};
use crate::ops::{self, Reply, Request, VolumeInfo};
use crate::progress::{self, Bar, Progress};
use crate::transfer::TransferOptions;

/// Runs the request `build` makes from the path resolver, and prints the reply.
fn run(
    data: &Path,
    common: &CommonArgs,
    build: impl FnOnce(&Resolver) -> Result<Request, CliError>,
) -> Result<(), CliError> {
    crate::init_logging("warn")?;
    let mut cfg = volume_config(data, &common.s3, process_env)?;
    // A short-lived command has no use for periodic background GC.
    cfg.gc_interval = None;
    let rt = crate::runtime()?;
    let draw = progress::wanted();
    let result = rt.block_on(async {
        if let Some(mut client) = Client::connect(&cfg.data_dir).await {
            let server = client.hello().await?;
            let mut mounts = server.mounts.clone();
            if let Some(addr) = server.nfs {
                mounts.extend(hostpath::local_nfs_mounts(addr));
            }
            let req = build(&Resolver::new(mounts))?;
            let progress = Progress::new();
            let _bar = req
                .progress_label()
                .map(|l| Bar::start(l, progress.clone(), draw));
            return client.call(&req, draw.then_some(&*progress)).await;
        }
        let req = build(&Resolver::new(Vec::new()))?;
        let create = if req.creates_volume() {
            Create::IfMissing
        } else {
            Create::Never
        };
        let volume = open(&cfg, create)?;
        let info = VolumeInfo {
            pid: std::process::id(),
            volume: volume.id().to_string(),
            data_dir: volume.data_dir().to_path_buf(),
            objects: volume.objects().to_string(),
            nfs: None,
            mounts: Vec::new(),
        };
        // SAFETY: geteuid/getegid have no preconditions.
        let caller = unsafe {
            Caller {
                uid: libc::geteuid(),
                gid: libc::getegid(),
            }
        };
        let progress = Progress::new();
        let bar = req
            .progress_label()
            .map(|l| Bar::start(l, progress.clone(), draw));
        let result = ops::execute(volume.fs(), &info, req, caller, &progress).await;
        drop(bar);
        // Close even after a failure: opening may have changed the volume (reaping).
        let closed = volume
            .close()
            .await
            .map_err(CliError::core("closing volume"));
        let reply = result?;
        closed?;
        Ok(reply)
    });
    crate::shutdown_runtime(rt);
    let reply = result?;
    let text = if common.json {
        reply.to_json()
    } else {
        reply.to_text()
    };
    crate::print_stdout(&text)?;
    match reply {
        Reply::Fsck(f) if !f.clean => Err(CliError::FsckFailed(f.violations.len())),
        _ => Ok(()),
    }
}

/// `nokv status`.
pub fn status(data: &Path, a: &StatusArgs) -> Result<(), CliError> {
    run(data, &a.common, |_| Ok(Request::Status))
}

/// `nokv workspaces`.
pub fn workspaces(data: &Path, a: &WorkspacesArgs) -> Result<(), CliError> {
    run(data, &a.common, |_| Ok(Request::Workspaces))
}

/// `nokv clone SRC DST`.
pub fn clone(data: &Path, a: &CloneArgs) -> Result<(), CliError> {
    run(data, &a.common, |r| {
        Ok(Request::Clone {
            src: r.volume_path(&a.src)?,
            dst: r.volume_path(&a.dst)?,
        })
    })
}

/// `nokv snapshot PATH [--name N]`.
pub fn snapshot(data: &Path, a: &SnapshotArgs) -> Result<(), CliError> {
    run(data, &a.common, |r| {
        Ok(Request::Snapshot {
            path: r.volume_path(&a.path)?,
            name: a.name.clone(),
        })
    })
}

/// `nokv snapshots [PATH]`.
pub fn snapshots(data: &Path, a: &SnapshotsArgs) -> Result<(), CliError> {
    run(data, &a.common, |r| {
        Ok(Request::Snapshots {
            path: a.path.as_deref().map(|p| r.volume_path(p)).transpose()?,
        })
    })
}

/// `nokv snapshot-delete NAME`.
pub fn snapshot_delete(data: &Path, a: &SnapshotDeleteArgs) -> Result<(), CliError> {
    run(data, &a.common, |_| {
        Ok(Request::SnapshotDelete {
            name: a.name.clone(),
        })
    })
}

/// `nokv rollback PATH SNAPSHOT`.
pub fn rollback(data: &Path, a: &RollbackArgs) -> Result<(), CliError> {
    run(data, &a.common, |r| {
        Ok(Request::Rollback {
            path: r.volume_path(&a.path)?,
            snapshot: a.snapshot.clone(),
        })
    })
}

/// `nokv diff A B`.
pub fn diff(data: &Path, a: &DiffArgs) -> Result<(), CliError> {
    run(data, &a.common, |r| {
        Ok(Request::Diff {
            a: r.volume_path(&a.a)?,
            b: r.volume_path(&a.b)?,
        })
    })
}

/// `nokv discard PATH`.
pub fn discard(data: &Path, a: &PathArgs) -> Result<(), CliError> {
    run(data, &a.common, |r| {
        Ok(Request::Discard {
            path: r.volume_path(&a.path)?,
        })
    })
}

/// `nokv promote FORK`.
pub fn promote(data: &Path, a: &PromoteArgs) -> Result<(), CliError> {
    run(data, &a.common, |r| {
        Ok(Request::Promote {
            fork: r.volume_path(&a.fork)?,
        })
    })
}

/// `nokv gc`.
pub fn gc(data: &Path, a: &GcArgs) -> Result<(), CliError> {
    run(data, &a.common, |_| {
        Ok(Request::Gc {
            dry_run: a.dry_run,
            grace_secs: a.grace.as_secs(),
        })
    })
}

/// `nokv fsck`.
pub fn fsck(data: &Path, a: &FsckArgs) -> Result<(), CliError> {
    run(data, &a.common, |_| Ok(Request::Fsck))
}

/// `nokv import HOSTDIR PATH`.
pub fn import(data: &Path, a: &ImportArgs) -> Result<(), CliError> {
    run(data, &a.common, |r| {
        Ok(Request::Import {
            host: r.host_path(&a.hostdir),
            path: r.volume_path(&a.path)?,
            opts: TransferOptions {
                jobs: a.jobs,
                delete: a.delete,
            },
        })
    })
}

/// `nokv export PATH HOSTDIR`.
pub fn export(data: &Path, a: &ExportArgs) -> Result<(), CliError> {
    run(data, &a.common, |r| {
        Ok(Request::Export {
            path: r.volume_path(&a.path)?,
            host: r.host_path(&a.hostdir),
            opts: TransferOptions {
                jobs: a.jobs,
                delete: a.delete,
            },
        })
    })
}
