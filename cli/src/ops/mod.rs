//! The operations behind the volume subcommands, as data: a [`Request`] is executed
//! against an open [`Fs`] by [`execute`] (in the CLI process when it opens the volume
//! itself, or in the server when it arrives over the admin socket) and answers a
//! [`Reply`], which the CLI prints as text or JSON. Both ways run exactly this code, so
//! a command behaves the same with or without a server.
//!
//! Paths in requests are volume paths (host paths inside a mount are translated by the
//! client first, see `hostpath`); host directories (import, export) are absolute.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nokv_core::workspace::GcOptions;
use nokv_core::{Caller, Fs};
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::progress::Progress;
use crate::transfer::{self, TransferOptions};

mod reply;

pub use reply::{ChangeOut, DiffOut, Done, GcOut, Reply, SnapshotOut, VolumeInfo, WorkspaceOut};

/// One operation on the volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Who is serving (admin socket handshake).
    Hello,
    /// `nokv status`.
    Status,
    /// `nokv workspaces`.
    Workspaces,
    /// `nokv clone SRC DST`.
    Clone {
        /// Directory cloned.
        src: String,
        /// New workspace path.
        dst: String,
    },
    /// `nokv snapshot PATH [--name N]`.
    Snapshot {
        /// Directory snapshotted.
        path: String,
        /// Label (`BASENAME@LABEL`); the next number when absent.
        name: Option<String>,
    },
    /// `nokv snapshots [PATH]`.
    Snapshots {
        /// Only the snapshots of this directory (its rollback candidates).
        path: Option<String>,
    },
    /// `nokv snapshot-delete NAME`.
    SnapshotDelete {
        /// Snapshot name.
        name: String,
    },
    /// `nokv rollback PATH SNAPSHOT`.
    Rollback {
        /// Workspace rolled back.
        path: String,
        /// Snapshot name.
        snapshot: String,
    },
    /// `nokv diff A B`.
    Diff {
        /// First tree.
        a: String,
        /// Second tree.
        b: String,
    },
    /// `nokv discard PATH`.
    Discard {
        /// Workspace discarded.
        path: String,
    },
    /// `nokv promote FORK`.
    Promote {
        /// Fork promoted into its base.
        fork: String,
    },
    /// `nokv gc`.
    Gc {
        /// Report only.
        dry_run: bool,
        /// Grace period for unreferenced objects, in seconds.
        grace_secs: u64,
    },
    /// `nokv fsck`.
    Fsck,
    /// `nokv import HOSTDIR PATH`.
    Import {
        /// Absolute host directory copied from.
        host: PathBuf,
        /// Volume directory copied into.
        path: String,
        /// Copy options.
        opts: TransferOptions,
    },
    /// `nokv export PATH HOSTDIR`.
    Export {
        /// Volume directory copied from.
        path: String,
        /// Absolute host directory copied into.
        host: PathBuf,
        /// Copy options.
        opts: TransferOptions,
    },
}

impl Request {
    /// Whether a direct run may create the volume (only `import`, which seeds one).
    pub fn creates_volume(&self) -> bool {
        matches!(self, Request::Import { .. })
    }

    /// The progress label, for operations long enough to show progress.
    pub fn progress_label(&self) -> Option<&'static str> {
        match self {
            Request::Import { .. } => Some("import"),
            Request::Export { .. } => Some("export"),
            Request::Gc { .. } => Some("gc"),
            Request::Fsck => Some("fsck"),
            _ => None,
        }
    }
}

/// Runs `req` on `fs` for `caller` (permissions of import/export), advancing `progress`.
pub async fn execute(
    fs: &Fs,
    info: &VolumeInfo,
    req: Request,
    caller: Caller,
    progress: &Arc<Progress>,
) -> Result<Reply, CliError> {
    Ok(match req {
        Request::Hello => Reply::Hello(info.clone()),
        Request::Status => Reply::Status(crate::status::gather(fs, info).await?),
        Request::Workspaces => Reply::Workspaces(
            fs.workspaces()
                .map_err(CliError::op("listing workspaces"))?
                .into_iter()
                .map(WorkspaceOut::from)
                .collect(),
        ),
        Request::Clone { src, dst } => {
            let w = fs
                .clone_tree(&src, &dst)
                .await
                .map_err(CliError::op(format!("clone {src} to {dst}")))?;
            Reply::Cloned(Done {
                target: w.path.clone(),
                other: Some(src),
                detail: w.into(),
            })
        }
        Request::Snapshot { path, name } => Reply::Snapshot(
            fs.snapshot(&path, name.as_deref())
                .await
                .map_err(CliError::op(format!("snapshot {path}")))?
                .into(),
        ),
        Request::Snapshots { path } => Reply::Snapshots(snapshots(fs, path.as_deref())?),
        Request::SnapshotDelete { name } => {
            fs.delete_snapshot(&name)
                .await
                .map_err(CliError::op(format!("snapshot-delete {name}")))?;
            Reply::SnapshotDeleted(done(name, None))
        }
        Request::Rollback { path, snapshot } => {
            fs.rollback(&path, &snapshot)
                .await
                .map_err(CliError::op(format!("rollback {path} to {snapshot}")))?;
            Reply::RolledBack(done(path, Some(snapshot)))
        }
        Request::Diff { a, b } => {
            let changes = fs
                .diff(&a, &b)
                .await
                .map_err(CliError::op(format!("diff {a} {b}")))?
                .map(ChangeOut::from)
                .collect();
            Reply::Diff(DiffOut { a, b, changes })
        }
        Request::Discard { path } => {
            fs.discard(&path)
                .await
                .map_err(CliError::op(format!("discard {path}")))?;
            Reply::Discarded(done(path, None))
        }
        Request::Promote { fork } => {
            let base = fs
                .resolve(&fork)
                .ok()
                .and_then(|id| fs.workspace_info(id.workspace()).ok())
                .and_then(|w| w.base_path);
            fs.promote(&fork)
                .await
                .map_err(CliError::op(format!("promote {fork}")))?;
            Reply::Promoted(done(fork, base))
        }
        Request::Gc {
            dry_run,
            grace_secs,
        } => {
            let opts = GcOptions {
                grace: Duration::from_secs(grace_secs),
                dry_run,
            };
            let r = fs.gc(&opts).await.map_err(CliError::op("gc"))?;
            Reply::Gc(GcOut::new(r, grace_secs))
        }
        Request::Fsck => Reply::Fsck(fs.fsck().await.map_err(CliError::op("fsck"))?.into()),
        Request::Import { host, path, opts } => {
            Reply::Imported(transfer::import(fs, &host, &path, &opts, &caller, progress).await?)
        }
        Request::Export { path, host, opts } => {
            Reply::Exported(transfer::export(fs, &path, &host, &opts, &caller, progress).await?)
        }
    })
}

fn done(target: String, other: Option<String>) -> Done<()> {
    Done {
        target,
        other,
        detail: (),
    }
}

/// Every snapshot, or those of directory `path`: same directory, taken in its workspace
/// or one that workspace was cloned from (for a workspace root: its rollback targets).
fn snapshots(fs: &Fs, path: Option<&str>) -> Result<Vec<SnapshotOut>, CliError> {
    let all = fs.snapshots();
    let Some(path) = path else {
        return Ok(all.into_iter().map(SnapshotOut::from).collect());
    };
    let id = fs
        .resolve(path)
        .map_err(CliError::op(format!("snapshots {path}")))?;
    // Inside a snapshot tree, the lineage starts at the workspace it was taken in.
    let start = all
        .iter()
        .find(|s| s.id == id.workspace())
        .map_or(id.workspace(), |s| s.workspace);
    let mut lineage = vec![start];
    let mut cur = start;
    while let Some(b) = fs.workspace_info(cur).ok().and_then(|w| w.base) {
        if lineage.contains(&b) {
            break;
        }
        lineage.push(b);
        cur = b;
    }
    Ok(all
        .into_iter()
        .filter(|s| s.root.ino() == id.ino() && lineage.contains(&s.workspace))
        .map(SnapshotOut::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_json() {
        let reqs = [
            Request::Hello,
            Request::Clone {
                src: "/base".into(),
                dst: "/forks/a".into(),
            },
            Request::Snapshot {
                path: "/base".into(),
                name: None,
            },
            Request::Gc {
                dry_run: true,
                grace_secs: 0,
            },
            Request::Import {
                host: "/tmp/x".into(),
                path: "/base".into(),
                opts: TransferOptions {
                    jobs: 4,
                    delete: true,
                },
            },
        ];
        for r in reqs {
            let line = serde_json::to_string(&r).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
        }
        let line = serde_json::to_string(&Request::SnapshotDelete { name: "b@1".into() }).unwrap();
        assert_eq!(line, r#"{"op":"snapshot-delete","name":"b@1"}"#);
    }
}
