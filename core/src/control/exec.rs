//! Running a parsed control command on the workspace API, and the text it answers with.
//!
//! Output formats (documented in `docs/control-files.md`; paths quoted by
//! [`quote`](super::quote) when they hold blanks, quotes or backslashes):
//!
//! ```text
//! clone      cloned SRC DST workspace=ID
//! snapshot   NAME
//! rollback   rolled back PATH to NAME
//! diff       one line per changed path: `A PATH`, `D PATH` or `M PATH`, in path order
//! discard    discarded PATH
//! promote    promoted FORK
//! gc         gc: L layers, R records, O objects (B bytes) freed; Y young objects kept
//! ```

use std::fmt::Write as _;

use super::command::{quote, Command};
use crate::error::Result;
use crate::fs::Fs;
use crate::workspace::GcOptions;

impl Fs {
    /// Runs `cmd` and returns its output.
    pub(crate) async fn run_command(&self, cmd: &Command) -> Result<String> {
        Ok(match cmd {
            Command::Clone { src, dst } => {
                let info = self.clone_tree(src, dst).await?;
                format!(
                    "cloned {} {} workspace={}\n",
                    quote(src),
                    quote(dst),
                    info.id
                )
            }
            Command::Snapshot { path, label } => {
                let snap = self.snapshot(path, label.as_deref()).await?;
                format!("{}\n", quote(&snap.name))
            }
            Command::Rollback { path, snapshot } => {
                self.rollback(path, snapshot).await?;
                format!("rolled back {} to {}\n", quote(path), quote(snapshot))
            }
            Command::Diff { a, b } => {
                let mut out = String::new();
                for e in self.diff(a, b).await? {
                    let _ = writeln!(out, "{} {}", e.change.letter(), quote(&e.path));
                }
                out
            }
            Command::Discard { path } => {
                self.discard(path).await?;
                format!("discarded {}\n", quote(path))
            }
            Command::Promote { fork } => {
                self.promote(fork).await?;
                format!("promoted {}\n", quote(fork))
            }
            Command::Gc { dry_run } => {
                let opts = GcOptions {
                    dry_run: *dry_run,
                    grace: self.inner.opts.gc_grace,
                };
                let r = self.gc(&opts).await?;
                format!(
                    "gc{}: {} layers, {} records, {} objects ({} bytes) {}; {} young objects kept\n",
                    if r.dry_run { " (dry run)" } else { "" },
                    r.layers,
                    r.records,
                    r.objects,
                    r.bytes,
                    if r.dry_run { "would be freed" } else { "freed" },
                    r.young_objects
                )
            }
        })
    }

    /// The text of `/.nokv/workspaces`: one line per workspace, root first:
    /// `PATH id=ID base=BASEPATH snapshots=NAME,NAME` (`-` for none; a base that no longer
    /// exists shows as `#ID`).
    pub(crate) fn workspaces_text(&self) -> Result<String> {
        let mut out = String::new();
        for w in self.workspaces()? {
            let base = match (&w.base_path, w.base) {
                (Some(p), _) => quote(p).into_owned(),
                (None, Some(id)) => format!("#{id}"),
                (None, None) => "-".to_string(),
            };
            let snaps = if w.snapshots.is_empty() {
                "-".to_string()
            } else {
                w.snapshots
                    .iter()
                    .map(|s| quote(s).into_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let _ = writeln!(
                out,
                "{} id={} base={} snapshots={}",
                quote(&w.path),
                w.id,
                base,
                snaps
            );
        }
        Ok(out)
    }
}
