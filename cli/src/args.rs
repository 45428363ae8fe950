//! The command line surface: clap definitions and nothing else.
//!
//! Every subcommand takes the global `--data DIR`. Flags that choose where a volume's blocks
//! live (`--s3-*`) are shared by every subcommand that opens the volume, because the volume
//! does not yet remember its object store: opening it with other settings than the server
//! uses would describe, and garbage-collect against, the wrong store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Parser, Subcommand};

/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./nokv-data";
/// The default NFS address: loopback only, the standard NFS port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:2049";

/// NoKV: a copy-on-write workspace filesystem.
#[derive(Debug, Parser)]
#[command(name = "nokv", version, about, propagate_version = true)]
// A missing subcommand is a one-line usage error, not the full help on stderr.
#[command(subcommand_required = true, arg_required_else_help = false)]
pub struct Cli {
    /// The volume's data directory (created by `serve` if missing).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = DEFAULT_DATA_DIR
    )]
    pub data: PathBuf,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open (or create) the volume and export it over NFSv3 until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Print the volume's id, object store, usage and root-directory size.
    #[command(after_help = "Examples:\n  nokv status\n  nokv status --data /srv/vol --json")]
    Status(StatusArgs),
    /// List the workspaces: id, path, base, snapshots.
    #[command(after_help = "Examples:\n  nokv workspaces\n  nokv workspaces --json")]
    Workspaces(WorkspacesArgs),
    /// Clone directory SRC (or a snapshot tree) to the new workspace DST. O(1).
    #[command(after_help = "Examples:\n  nokv clone /base /forks/agent-1\n  \
        nokv clone /.nokv/snapshots/base@v1 /forks/from-v1\n  \
        nokv clone /mnt/nokv/base /mnt/nokv/forks/agent-2   # host paths in a mount")]
    Clone(CloneArgs),
    /// Take a read-only snapshot of directory PATH, named BASENAME@LABEL.
    #[command(
        after_help = "Examples:\n  nokv snapshot /base --name v1     # base@v1\n  \
        nokv snapshot /base               # base@1, base@2, ..."
    )]
    Snapshot(SnapshotArgs),
    /// List snapshots (with PATH: the snapshots of that directory, i.e. its rollback targets).
    #[command(after_help = "Examples:\n  nokv snapshots\n  nokv snapshots /forks/agent-1 --json")]
    Snapshots(SnapshotsArgs),
    /// Delete snapshot NAME; what only it kept becomes garbage for `nokv gc`.
    #[command(after_help = "Example:\n  nokv snapshot-delete base@v1")]
    SnapshotDelete(SnapshotDeleteArgs),
    /// Roll workspace PATH back to SNAPSHOT (of the directory it was cloned from). O(1).
    #[command(after_help = "Example:\n  nokv rollback /forks/agent-1 base@v1")]
    Rollback(RollbackArgs),
    /// List what differs between directory trees A and B: `A /added`, `M /modified`, `D /removed`.
    #[command(after_help = "Examples:\n  nokv diff /base /forks/agent-1\n  \
        nokv diff /.nokv/snapshots/base@v1 /base --json")]
    Diff(DiffArgs),
    /// Discard workspace PATH (and the workspaces nested in it).
    #[command(after_help = "Example:\n  nokv discard /forks/agent-2")]
    Discard(PathArgs),
    /// Make FORK's content its base's, and remove FORK.
    #[command(
        after_help = "Example:\n  nokv promote /forks/agent-3   # /base now has agent-3's changes"
    )]
    Promote(PromoteArgs),
    /// Delete what no workspace or snapshot can read any more.
    #[command(
        after_help = "Examples:\n  nokv gc --dry-run\n  nokv gc --grace 0   # also objects written just now"
    )]
    Gc(GcArgs),
    /// Check every invariant of the volume; exit 1 if one is broken.
    #[command(after_help = "Examples:\n  nokv fsck\n  nokv fsck --json")]
    Fsck(FsckArgs),
    /// Copy host directory HOSTDIR into volume directory PATH (created if missing; resumable).
    #[command(after_help = "Examples:\n  nokv import ./dataset /base\n  \
        nokv import ./dataset /base            # again: copies only what changed\n  \
        nokv import --delete ./edited /forks/agent-1   # make the fork match ./edited")]
    Import(ImportArgs),
    /// Copy volume directory PATH to host directory HOSTDIR (created if missing; resumable).
    #[command(after_help = "Examples:\n  nokv export /forks/agent-1 ./agent-1\n  \
        nokv export /.nokv/snapshots/base@v1 ./v1")]
    Export(ExportArgs),
    /// Open (or create) the volume and mount it with FUSE at DIR until unmounted or signalled.
    Mount(crate::mount::MountArgs),
    /// Unmount a FUSE mount of a volume and wait until its server has closed the volume.
    Umount(crate::mount::UmountArgs),
}

/// `nokv serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address (IP:PORT) of the NFSv3 server; NFS and MOUNT share the port. Port 0 picks a
    /// free one. Anything but loopback exposes the volume to the network (AUTH_UNIX only).
    #[arg(long, value_name = "IP:PORT", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// Also serve NFS calls from this uid (repeatable). The owner of the data directory and
    /// root are always served; calls from any other uid are refused.
    #[arg(long = "allow-uid", value_name = "UID")]
    pub allow_uid: Vec<u32>,

    /// Also mount the volume with FUSE at this directory, in the same process.
    #[arg(long, value_name = "DIR")]
    pub fuse: Option<PathBuf>,

    /// GC grace period of this server (background GC and `/.nokv/gc`): unreferenced objects
    /// younger than this are kept, as they may be uploads in flight: `0`, `90s`, `15m`.
    #[arg(long, value_name = "DURATION", default_value = "15m",
          value_parser = crate::args::parse_duration)]
    pub gc_grace: std::time::Duration,

    /// Where the volume's blocks live.
    #[command(flatten)]
    pub s3: S3Args,
}

/// Flags of every volume subcommand.
#[derive(Debug, Args, Default, Clone)]
pub struct CommonArgs {
    /// Print the result as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,

    /// Where the volume's blocks live (must match what `serve` uses; ignored when the
    /// command goes through a running server).
    #[command(flatten)]
    pub s3: S3Args,
}

/// `nokv status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `nokv workspaces`.
#[derive(Debug, Args)]
pub struct WorkspacesArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `nokv clone`.
#[derive(Debug, Args)]
pub struct CloneArgs {
    /// Directory to clone: a volume path (`/base`), a snapshot tree
    /// (`/.nokv/snapshots/NAME`), or a host path inside a mount.
    pub src: String,
    /// Where the new workspace appears (must not exist; its parent must).
    pub dst: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `nokv snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Directory to snapshot.
    pub path: String,
    /// Label: the snapshot is named BASENAME@LABEL [default: the next number].
    #[arg(long, value_name = "LABEL")]
    pub name: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `nokv snapshots`.
#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Only the snapshots of this directory.
    pub path: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `nokv snapshot-delete`.
#[derive(Debug, Args)]
pub struct SnapshotDeleteArgs {
    /// Snapshot name (`base@v1`).
    pub name: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `nokv rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Workspace to roll back (its root directory).
    pub path: String,
    /// Snapshot name (`base@v1`).
    pub snapshot: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `nokv diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// First directory (the "before").
    pub a: String,
    /// Second directory (the "after").
    pub b: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Subcommands taking one workspace path (`discard`).
#[derive(Debug, Args)]
pub struct PathArgs {
    /// Workspace (its root directory).
    pub path: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `nokv promote`.
#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// Fork to promote into the workspace it was cloned from.
    pub fork: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `nokv gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Report what would be freed; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep unreferenced objects younger than this (uploads in flight): `0`, `90s`, `15m`, `2h`.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub grace: Duration,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `nokv fsck`.
#[derive(Debug, Args)]
pub struct FsckArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `nokv import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Host directory to copy from.
    pub hostdir: PathBuf,
    /// Volume directory to copy into (created if missing; merged into if it exists).
    pub path: String,
    /// Files copied in parallel.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 8,
          value_parser = parse_jobs)]
    pub jobs: usize,
    /// Remove entries of PATH that HOSTDIR does not have (PATH then mirrors HOSTDIR).
    #[arg(long)]
    pub delete: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `nokv export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Volume directory to copy from (a snapshot tree works too).
    pub path: String,
    /// Host directory to copy into (created if missing; merged into if it exists).
    pub hostdir: PathBuf,
    /// Files copied in parallel.
    #[arg(long, short = 'j', value_name = "N", default_value_t = 8,
          value_parser = parse_jobs)]
    pub jobs: usize,
    /// Remove entries of HOSTDIR that PATH does not have (HOSTDIR then mirrors PATH).
    #[arg(long)]
    pub delete: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// A number of parallel copies: 1 to 256.
pub fn parse_jobs(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=256).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a number from 1 to 256")),
    }
}

/// `0`, `90s`, `15m`, `2h`, `1d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 0, 90s, 15m, 2h)"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{s:?} is not a duration (e.g. 0, 90s, 15m, 2h)")),
    };
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// S3 settings. Without `--s3-bucket` blocks live in `DATA/objects`.
///
/// Credentials are never flags (they would show in `ps` and in the volume's LOCK file); they
/// come from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Object store")]
pub struct S3Args {
    /// Store blocks in this S3 bucket instead of DATA/objects.
    #[arg(long, value_name = "BUCKET", value_parser = NonEmptyStringValueParser::new())]
    pub s3_bucket: Option<String>,

    /// S3 endpoint URL [default: $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, or AWS].
    #[arg(long, value_name = "URL", requires = "s3_bucket")]
    pub s3_endpoint: Option<String>,

    /// S3 region [default: $AWS_REGION or $AWS_DEFAULT_REGION].
    #[arg(long, value_name = "REGION", requires = "s3_bucket")]
    pub s3_region: Option<String>,

    /// Key prefix inside the bucket.
    #[arg(long, value_name = "PREFIX", requires = "s3_bucket")]
    pub s3_prefix: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn data_is_global_and_defaults() {
        let cli = Cli::try_parse_from(["nokv", "status"]).unwrap();
        assert_eq!(cli.data, PathBuf::from(DEFAULT_DATA_DIR));
        let cli = Cli::try_parse_from(["nokv", "status", "--data", "/x"]).unwrap();
        assert_eq!(cli.data, PathBuf::from("/x"));
        let cli = Cli::try_parse_from(["nokv", "--data", "/y", "serve"]).unwrap();
        assert_eq!(cli.data, PathBuf::from("/y"));
    }

    #[test]
    fn serve_listens_on_loopback_by_default() {
        let cli = Cli::try_parse_from(["nokv", "serve"]).unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("parsed as another subcommand")
        };
        assert_eq!(a.listen, DEFAULT_LISTEN.parse::<SocketAddr>().unwrap());
        assert!(a.listen.ip().is_loopback());
        assert!(a.allow_uid.is_empty());
        let cli = Cli::try_parse_from([
            "nokv",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow-uid",
            "7",
            "--allow-uid",
            "8",
        ])
        .unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("parsed as another subcommand")
        };
        assert_eq!(a.listen.port(), 0);
        assert_eq!(a.allow_uid, [7, 8]);
        for bad in ["localhost", "127.0.0.1", "127.0.0.1:70000", ":2049", ""] {
            assert!(
                Cli::try_parse_from(["nokv", "serve", "--listen", bad]).is_err(),
                "{bad:?}"
            );
        }
        assert!(Cli::try_parse_from(["nokv", "serve", "--allow-uid", "-1"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["", "m", "1x", "-1", "1.5h", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn workspace_subcommands_parse() {
        let cli =
            Cli::try_parse_from(["nokv", "snapshot", "/base", "--name", "v1", "--json"]).unwrap();
        let Command::Snapshot(a) = cli.command else {
            panic!("parsed as another subcommand")
        };
        assert_eq!(
            (a.path.as_str(), a.name.as_deref(), a.common.json),
            ("/base", Some("v1"), true)
        );
        assert!(Cli::try_parse_from(["nokv", "clone", "/a"]).is_err());
        assert!(Cli::try_parse_from(["nokv", "import", "d", "/p", "--jobs", "0"]).is_err());
        let cli = Cli::try_parse_from(["nokv", "gc", "--dry-run", "--grace", "0"]).unwrap();
        let Command::Gc(g) = cli.command else {
            panic!("parsed as another subcommand")
        };
        assert!(g.dry_run);
        assert_eq!(g.grace, Duration::ZERO);
    }

    #[test]
    fn s3_settings_need_a_bucket() {
        assert!(Cli::try_parse_from(["nokv", "serve", "--s3-region", "eu"]).is_err());
        assert!(Cli::try_parse_from(["nokv", "serve", "--s3-bucket", ""]).is_err());
        let cli =
            Cli::try_parse_from(["nokv", "serve", "--s3-bucket", "b", "--s3-prefix", "p"]).unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("parsed as another subcommand")
        };
        assert_eq!(a.s3.s3_bucket.as_deref(), Some("b"));
        assert_eq!(a.s3.s3_prefix.as_deref(), Some("p"));
    }
}
