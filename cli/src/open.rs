//! From command-line arguments to an open [`Volume`]: the data directory, the object store
//! settings (flags first, then the usual AWS environment variables) and the open itself.

use std::path::{Path, PathBuf};

use nokv_core::object::S3Config;
use nokv_core::{Volume, VolumeConfig};

use crate::args::S3Args;
use crate::error::CliError;

/// Whether opening may create a new volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Create the data directory and a new volume when there is none (`serve`).
    IfMissing,
    /// Fail when there is no volume yet (inspection commands must not create one).
    Never,
}

/// The volume configuration for `data` and `s3`, reading unset S3 settings from `env`.
pub fn volume_config(
    data: &Path,
    s3: &S3Args,
    env: impl Fn(&str) -> Option<String>,
) -> Result<VolumeConfig, CliError> {
    // Absolute, so logs, the serving line and lock errors name the directory unambiguously.
    let dir = std::path::absolute(data).map_err(CliError::io("resolving --data"))?;
    let mut cfg = VolumeConfig::new(dir);
    cfg.s3 = s3_config(s3, env);
    Ok(cfg)
}

/// Opens the volume of `cfg`. A volume held by another process fails at once with the
/// core's error naming the holder.
pub fn open(cfg: &VolumeConfig, create: Create) -> Result<Volume, CliError> {
    check_data_dir(&cfg.data_dir, create)?;
    Volume::open(cfg).map_err(CliError::core(""))
}

fn check_data_dir(dir: &Path, create: Create) -> Result<(), CliError> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => return Err(CliError::DataNotDir(dir.to_path_buf())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CliError::io("--data")(e)),
    }
    if create == Create::Never && !nokv_core::Volume::exists(dir) {
        return Err(CliError::NoVolume(PathBuf::from(dir)));
    }
    Ok(())
}

/// S3 settings when a bucket is given: flags win, then the AWS environment variables.
fn s3_config(args: &S3Args, env: impl Fn(&str) -> Option<String>) -> Option<S3Config> {
    let bucket = args.s3_bucket.clone()?;
    let var = |name: &str| env(name).filter(|v| !v.is_empty());
    Some(S3Config {
        endpoint: args
            .s3_endpoint
            .clone()
            .or_else(|| var("AWS_ENDPOINT_URL_S3"))
            .or_else(|| var("AWS_ENDPOINT_URL")),
        bucket,
        region: args
            .s3_region
            .clone()
            .or_else(|| var("AWS_REGION"))
            .or_else(|| var("AWS_DEFAULT_REGION")),
        root: args.s3_prefix.clone(),
        access_key_id: var("AWS_ACCESS_KEY_ID"),
        secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
    })
}

/// The process environment, for [`volume_config`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "AWS_ENDPOINT_URL" => Some("http://env:9000".into()),
            "AWS_REGION" => Some("".into()),
            "AWS_DEFAULT_REGION" => Some("eu-west-1".into()),
            "AWS_ACCESS_KEY_ID" => Some("AKID".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("SECRET".into()),
            _ => None,
        }
    }

    #[test]
    fn no_bucket_means_local_objects() {
        assert!(s3_config(&S3Args::default(), env).is_none());
    }

    #[test]
    fn flags_win_over_environment() {
        let args = S3Args {
            s3_bucket: Some("b".into()),
            s3_endpoint: Some("http://flag:9000".into()),
            s3_region: Some("us-east-2".into()),
            s3_prefix: Some("vol1".into()),
        };
        let c = s3_config(&args, env).unwrap();
        assert_eq!(c.bucket, "b");
        assert_eq!(c.endpoint.as_deref(), Some("http://flag:9000"));
        assert_eq!(c.region.as_deref(), Some("us-east-2"));
        assert_eq!(c.root.as_deref(), Some("vol1"));
        assert_eq!(c.access_key_id.as_deref(), Some("AKID"));
        assert_eq!(c.secret_access_key.as_deref(), Some("SECRET"));
    }

    #[test]
    fn environment_fills_unset_flags_and_empty_values_are_unset() {
        let args = S3Args {
            s3_bucket: Some("b".into()),
            ..S3Args::default()
        };
        let c = s3_config(&args, env).unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://env:9000"));
        assert_eq!(c.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.root, None);
    }

    #[test]
    fn data_dir_checks() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            check_data_dir(&file, Create::IfMissing),
            Err(CliError::DataNotDir(_))
        ));
        let missing = tmp.path().join("missing");
        assert!(check_data_dir(&missing, Create::IfMissing).is_ok());
        assert!(matches!(
            check_data_dir(&missing, Create::Never),
            Err(CliError::NoVolume(_))
        ));
        assert!(matches!(
            check_data_dir(tmp.path(), Create::Never),
            Err(CliError::NoVolume(_))
        ));
    }
}
