//! The command line surface: clap definitions and nothing else.
//!
//! Every subcommand takes the global `--data DIR`. Flags that choose where a volume's blocks
//! live (`--s3-*`) are shared by every subcommand that opens the volume, because the volume
//! does not yet remember its object store: opening it with other settings than the server
//! uses would describe, and garbage-collect against, the wrong store.

use std::net::SocketAddr;
use std::path::PathBuf;

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
    Status(StatusArgs),
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

    /// Where the volume's blocks live.
    #[command(flatten)]
    pub s3: S3Args,
}

/// `nokv status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,

    /// Where the volume's blocks live (must match what `serve` uses).
    #[command(flatten)]
    pub s3: S3Args,
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
