//! What volume operations answer: the [`Reply`] to each [`super::Request`], its parts, and
//! how the CLI prints them (one line of JSON for `--json`, aligned text for people). The
//! JSON field names are part of the CLI's interface (`docs/cli.md`).

use std::net::SocketAddr;
use std::path::PathBuf;

use nokv_core::workspace::{DiffEntry, FsckReport, GcReport, SnapshotInfo, WorkspaceInfo};
use nokv_core::FileType;
use serde::{Deserialize, Serialize};

use crate::hostpath::MountPoint;
use crate::progress::human_bytes;
use crate::status::Status;
use crate::transfer::TransferReport;

/// What serves the volume (or, in a direct run, what was opened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    /// Process id of the server (or of this process).
    pub pid: u32,
    /// Volume id.
    pub volume: String,
    /// Absolute data directory.
    pub data_dir: PathBuf,
    /// Where blocks live.
    pub objects: String,
    /// The NFS server's address, if one runs.
    pub nfs: Option<SocketAddr>,
    /// Mount points the server knows of (FUSE mounts).
    pub mounts: Vec<MountPoint>,
}

/// A workspace, as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceOut {
    /// Workspace id.
    pub id: u64,
    /// Volume path.
    pub path: String,
    /// Workspace it was cloned from.
    pub base: Option<u64>,
    /// Volume path of that workspace.
    pub base_path: Option<String>,
    /// Snapshots taken in it.
    pub snapshots: Vec<String>,
}

impl From<WorkspaceInfo> for WorkspaceOut {
    fn from(w: WorkspaceInfo) -> Self {
        WorkspaceOut {
            id: w.id,
            path: w.path,
            base: w.base,
            base_path: w.base_path,
            snapshots: w.snapshots,
        }
    }
}

/// A snapshot, as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotOut {
    /// `BASENAME@LABEL`.
    pub name: String,
    /// Volume path of the directory when it was taken.
    pub path: String,
    /// Workspace it was taken in.
    pub workspace: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
}

impl From<SnapshotInfo> for SnapshotOut {
    fn from(s: SnapshotInfo) -> Self {
        SnapshotOut {
            name: s.name,
            path: s.path,
            workspace: s.workspace,
            created: s.created.secs,
        }
    }
}

/// One changed path of a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeOut {
    /// `added`, `removed` or `modified`.
    pub change: String,
    /// Path relative to the compared directories.
    pub path: String,
    /// `file`, `dir`, `symlink`, `fifo`, `socket`, `char`, `block`.
    pub kind: String,
    /// For modifications: `content`, `type`, `mode`, `owner`, `target`, `xattrs`.
    pub what: Vec<String>,
    /// Size in B minus size in A.
    pub size_delta: i64,
}

impl From<DiffEntry> for ChangeOut {
    fn from(e: DiffEntry) -> Self {
        ChangeOut {
            change: match e.change {
                nokv_core::workspace::Change::Added => "added",
                nokv_core::workspace::Change::Removed => "removed",
                nokv_core::workspace::Change::Modified => "modified",
            }
            .into(),
            path: e.path,
            kind: kind_name(e.kind).into(),
            what: e.what.names().into_iter().map(String::from).collect(),
            size_delta: e.size_delta,
        }
    }
}

fn kind_name(k: FileType) -> &'static str {
    match k {
        FileType::File => "file",
        FileType::Dir => "dir",
        FileType::Symlink => "symlink",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharDevice => "char",
        FileType::BlockDevice => "block",
    }
}

/// The result of `diff`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffOut {
    /// First tree.
    pub a: String,
    /// Second tree.
    pub b: String,
    /// Changed paths, in path order.
    pub changes: Vec<ChangeOut>,
}

/// The result of `gc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcOut {
    /// Whether nothing was deleted.
    pub dry_run: bool,
    /// Grace period used, seconds.
    pub grace_secs: u64,
    /// Unreachable layers removed.
    pub layers: u64,
    /// Metadata records deleted.
    pub records: u64,
    /// Objects deleted.
    pub objects: u64,
    /// Bytes of those objects.
    pub bytes: u64,
    /// Unreferenced objects kept for being younger than the grace period.
    pub young_objects: u64,
}

impl GcOut {
    pub(super) fn new(r: GcReport, grace_secs: u64) -> Self {
        GcOut {
            dry_run: r.dry_run,
            grace_secs,
            layers: r.layers,
            records: r.records,
            objects: r.objects,
            bytes: r.bytes,
            young_objects: r.young_objects,
        }
    }
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViolationOut {
    /// Its tag in `docs/design.md`.
    pub invariant: String,
    /// What is wrong.
    pub detail: String,
}

/// The result of `fsck`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsckOut {
    /// No violation found.
    pub clean: bool,
    /// What was found.
    pub violations: Vec<ViolationOut>,
    /// Metadata keys scanned.
    pub keys: u64,
    /// Views walked.
    pub views: u64,
    /// Inodes visited.
    pub inodes: u64,
    /// Objects checked.
    pub objects: u64,
}

impl From<FsckReport> for FsckOut {
    fn from(r: FsckReport) -> Self {
        FsckOut {
            clean: r.is_clean(),
            violations: r
                .violations
                .into_iter()
                .map(|v| ViolationOut {
                    invariant: v.invariant.into(),
                    detail: v.detail,
                })
                .collect(),
            keys: r.keys,
            views: r.views,
            inodes: r.inodes,
            objects: r.objects,
        }
    }
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", content = "body", rename_all = "kebab-case")]
pub enum Reply {
    /// To `Hello`.
    Hello(VolumeInfo),
    /// To `Status`.
    Status(Status),
    /// To `Workspaces`.
    Workspaces(Vec<WorkspaceOut>),
    /// To `Clone`: the new workspace.
    Cloned(Done<WorkspaceOut>),
    /// To `Snapshot`.
    Snapshot(SnapshotOut),
    /// To `Snapshots`.
    Snapshots(Vec<SnapshotOut>),
    /// To `SnapshotDelete`.
    SnapshotDeleted(Done<()>),
    /// To `Rollback`.
    RolledBack(Done<()>),
    /// To `Diff`.
    Diff(DiffOut),
    /// To `Discard`.
    Discarded(Done<()>),
    /// To `Promote`.
    Promoted(Done<()>),
    /// To `Gc`.
    Gc(GcOut),
    /// To `Fsck`.
    Fsck(FsckOut),
    /// To `Import`.
    Imported(TransferReport),
    /// To `Export`.
    Exported(TransferReport),
}

/// A finished change: what it was applied to, plus details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done<T> {
    /// The operation's subject (a path or snapshot name).
    pub target: String,
    /// The other operand (clone source, rollback snapshot, promote base), if any.
    pub other: Option<String>,
    /// Details.
    pub detail: T,
}

impl Reply {
    /// The reply as one line of JSON (what `--json` prints).
    pub fn to_json(&self) -> String {
        let v = match self {
            Reply::Hello(x) => serde_json::to_value(x),
            Reply::Status(x) => return crate::status::to_json(x),
            Reply::Workspaces(x) => serde_json::to_value(x),
            Reply::Cloned(x) => serde_json::to_value(&x.detail),
            Reply::Snapshot(x) => serde_json::to_value(x),
            Reply::Snapshots(x) => serde_json::to_value(x),
            Reply::SnapshotDeleted(x) => Ok(serde_json::json!({ "deleted": x.target })),
            Reply::RolledBack(x) => {
                Ok(serde_json::json!({ "path": x.target, "snapshot": x.other }))
            }
            Reply::Diff(x) => serde_json::to_value(x),
            Reply::Discarded(x) => Ok(serde_json::json!({ "discarded": x.target })),
            Reply::Promoted(x) => Ok(serde_json::json!({ "promoted": x.target, "base": x.other })),
            Reply::Gc(x) => serde_json::to_value(x),
            Reply::Fsck(x) => serde_json::to_value(x),
            Reply::Imported(x) | Reply::Exported(x) => serde_json::to_value(x),
        };
        format!("{}\n", v.unwrap_or(serde_json::Value::Null))
    }

    /// The reply as text for people.
    pub fn to_text(&self) -> String {
        match self {
            Reply::Hello(h) => format!(
                "volume {} served by pid {} from {}\n",
                h.volume,
                h.pid,
                h.data_dir.display()
            ),
            Reply::Status(s) => crate::status::to_text(s),
            Reply::Workspaces(ws) => workspaces_text(ws),
            Reply::Cloned(d) => format!(
                "cloned {} to {} (workspace {})\n",
                d.other.as_deref().unwrap_or("?"),
                d.target,
                d.detail.id
            ),
            Reply::Snapshot(s) => format!("snapshot {} of {}\n", s.name, s.path),
            Reply::Snapshots(s) => snapshots_text(s),
            Reply::SnapshotDeleted(d) => format!("deleted snapshot {}\n", d.target),
            Reply::RolledBack(d) => format!(
                "rolled back {} to {}\n",
                d.target,
                d.other.as_deref().unwrap_or("?")
            ),
            Reply::Diff(d) => d
                .changes
                .iter()
                .map(|c| {
                    let letter = match c.change.as_str() {
                        "added" => 'A',
                        "removed" => 'D',
                        _ => 'M',
                    };
                    // Quoted like the control files' output, so a path with a blank or
                    // a newline stays one unambiguous line.
                    format!("{letter} {}\n", nokv_core::control::quote(&c.path))
                })
                .collect(),
            Reply::Discarded(d) => format!("discarded {}\n", d.target),
            Reply::Promoted(d) => match &d.other {
                Some(base) => format!("promoted {} into {base}\n", d.target),
                None => format!("promoted {}\n", d.target),
            },
            Reply::Gc(g) => gc_text(g),
            Reply::Fsck(f) => fsck_text(f),
            Reply::Imported(r) => format!("imported {}\n", r.summary()),
            Reply::Exported(r) => format!("exported {}\n", r.summary()),
        }
    }
}

fn workspaces_text(ws: &[WorkspaceOut]) -> String {
    let mut rows = vec![[
        "ID".to_string(),
        "PATH".into(),
        "BASE".into(),
        "SNAPSHOTS".into(),
    ]];
    for w in ws {
        rows.push([
            w.id.to_string(),
            w.path.clone(),
            w.base_path
                .clone()
                .or(w.base.map(|b| format!("#{b}")))
                .unwrap_or_else(|| "-".into()),
            if w.snapshots.is_empty() {
                "-".into()
            } else {
                w.snapshots.join(",")
            },
        ]);
    }
    table(&rows)
}

fn snapshots_text(s: &[SnapshotOut]) -> String {
    if s.is_empty() {
        return "no snapshots\n".into();
    }
    let mut rows = vec![["NAME".to_string(), "PATH".into(), "CREATED (UTC)".into()]];
    for x in s {
        rows.push([x.name.clone(), x.path.clone(), utc(x.created)]);
    }
    table(&rows)
}

fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut width = [0usize; N];
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == N {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn gc_text(g: &GcOut) -> String {
    let verb = if g.dry_run { "would free" } else { "freed" };
    format!(
        "gc{}: {verb} {} layer(s), {} record(s), {} object(s) ({}); kept {} unreferenced object(s) younger than {}s\n",
        if g.dry_run { " (dry run)" } else { "" },
        g.layers,
        g.records,
        g.objects,
        human_bytes(g.bytes),
        g.young_objects,
        g.grace_secs
    )
}

fn fsck_text(f: &FsckOut) -> String {
    let mut out = String::new();
    for v in &f.violations {
        out.push_str(&format!("{}: {}\n", v.invariant, v.detail));
    }
    out.push_str(&format!(
        "fsck: {} ({} keys, {} views, {} inodes, {} objects checked)\n",
        if f.clean {
            "clean".to_string()
        } else {
            format!("{} violation(s)", f.violations.len())
        },
        f.keys,
        f.views,
        f.inodes,
        f.objects
    ));
    out
}

/// `secs` since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_text_uses_the_design_letters() {
        let c = |change: &str, path: &str| ChangeOut {
            change: change.into(),
            path: path.into(),
            kind: "file".into(),
            what: vec![],
            size_delta: 0,
        };
        let r = Reply::Diff(DiffOut {
            a: "/a".into(),
            b: "/b".into(),
            changes: vec![c("modified", "/a"), c("added", "/b"), c("removed", "/old")],
        });
        assert_eq!(r.to_text(), "M /a\nA /b\nD /old\n");
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["changes"][1]["change"], "added");
        assert_eq!(v["changes"][2]["path"], "/old");
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(&[
            ["A".to_string(), "BB".into()],
            ["ccc".to_string(), "d".into()],
        ]);
        assert_eq!(t, "A    BB\nccc  d\n");
    }
}
