//! `nokv status`: what the volume is and how full it is. Runs like every volume
//! subcommand (see `workspace_cmds`): through the admin socket of a running server, or on
//! the volume opened directly. It never creates a volume.

use std::path::PathBuf;

use nokv_core::{Caller, Fs, StatFs};
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::ops::VolumeInfo;

/// Entries asked for per `readdir` call when counting the root directory.
const READDIR_PAGE: usize = 1024;

/// What `nokv status` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Volume id.
    pub volume: String,
    /// Absolute data directory.
    pub data_dir: PathBuf,
    /// Where blocks are stored.
    pub objects: String,
    /// Filesystem usage.
    pub statfs: StatFsOut,
    /// Entries of the root directory, without `.` and `..`.
    pub root_entries: u64,
}

/// [`StatFs`], serializable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatFsOut {
    /// Block size in bytes.
    pub block_size: u32,
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub blocks_free: u64,
    /// Blocks available to unprivileged users.
    pub blocks_available: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub files_free: u64,
    /// Longest name.
    pub name_max: u32,
}

impl From<StatFs> for StatFsOut {
    fn from(s: StatFs) -> Self {
        StatFsOut {
            block_size: s.block_size,
            blocks: s.blocks,
            blocks_free: s.blocks_free,
            blocks_available: s.blocks_available,
            files: s.files,
            files_free: s.files_free,
            name_max: s.name_max,
        }
    }
}

/// Gathers the status of the open volume `fs` described by `info`.
pub async fn gather(fs: &Fs, info: &VolumeInfo) -> Result<Status, CliError> {
    let statfs = fs.statfs().await.map_err(CliError::core("statfs"))?;
    let mut root_entries = 0u64;
    let mut cookie = 0;
    loop {
        let (page, done) = fs
            .readdir(fs.root(), cookie, READDIR_PAGE, &Caller::ROOT)
            .await
            .map_err(CliError::core("listing the root directory"))?;
        root_entries += page
            .iter()
            .filter(|e| e.name != b"." && e.name != b"..")
            .count() as u64;
        match page.last() {
            Some(last) if !done => cookie = last.cookie,
            _ => break,
        }
    }
    Ok(Status {
        volume: info.volume.clone(),
        data_dir: info.data_dir.clone(),
        objects: info.objects.clone(),
        statfs: statfs.into(),
        root_entries,
    })
}

/// Human-readable report, one `key: value` per line.
pub fn to_text(s: &Status) -> String {
    let st = &s.statfs;
    let used = st.blocks.saturating_sub(st.blocks_free);
    format!(
        "volume:       {}\n\
         data dir:     {}\n\
         objects:      {}\n\
         blocks:       {} ({} bytes each; {} used, {} free, {} available)\n\
         inodes:       {} ({} free)\n\
         root entries: {}\n",
        s.volume,
        s.data_dir.display(),
        s.objects,
        st.blocks,
        st.block_size,
        used,
        st.blocks_free,
        st.blocks_available,
        st.files,
        st.files_free,
        s.root_entries
    )
}

/// Machine-readable report: one JSON object on one line.
pub fn to_json(s: &Status) -> String {
    let st = &s.statfs;
    let value = serde_json::json!({
        "volume": s.volume,
        "data_dir": s.data_dir.to_string_lossy(),
        "objects": s.objects,
        "statfs": {
            "block_size": st.block_size,
            "blocks": st.blocks,
            "blocks_free": st.blocks_free,
            "blocks_available": st.blocks_available,
            "files": st.files,
            "files_free": st.files_free,
            "name_max": st.name_max,
        },
        "root_entries": s.root_entries,
    });
    format!("{value}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        Status {
            volume: "00ab".into(),
            data_dir: PathBuf::from("/srv/\"vol\""),
            objects: "fs:/srv/vol/objects".into(),
            statfs: StatFsOut {
                block_size: 4096,
                blocks: 100,
                blocks_free: 40,
                blocks_available: 30,
                files: 10,
                files_free: 7,
                name_max: 255,
            },
            root_entries: 3,
        }
    }

    #[test]
    fn json_is_one_parseable_line() {
        let out = to_json(&sample());
        assert_eq!(out.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["volume"], "00ab");
        assert_eq!(v["data_dir"], "/srv/\"vol\"");
        assert_eq!(v["statfs"]["blocks_free"], 40);
        assert_eq!(v["root_entries"], 3);
    }

    #[test]
    fn text_names_every_field() {
        let out = to_text(&sample());
        for needle in [
            "volume:       00ab",
            "objects:      fs:/srv/vol/objects",
            "blocks:       100 (4096 bytes each; 60 used, 40 free, 30 available)",
            "inodes:       10 (7 free)",
            "root entries: 3",
        ] {
            assert!(out.contains(needle), "{needle:?} missing from {out}");
        }
    }
}
