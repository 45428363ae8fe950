//! gc: reachability garbage collection of layers, record versions and objects.
//!
//! Roots are workspace heads (read at the newest version) and snapshots (read at their
//! version); a reachable layer with a parent makes the parent's read point a root too. Then:
//! 1. layers no root reaches are deleted with all their records;
//! 2. in reachable layers, a record version is kept only if some reader of the layer sees
//!    it (it is the newest version at or below the reader's version) and it still matters
//!    there (chunk manifests older than the file's data epoch, and chunk, xattr and entry
//!    records of an inode that is deleted in that layer, do not);
//! 3. objects under `blocks/{volume}/` that no remaining chunk manifest references and
//!    that are older than the grace period (so uploads not yet published are safe) are
//!    deleted.
//!
//! Never touches a block any workspace or snapshot can read: step 3 keeps every object a
//! kept manifest names, and step 2 keeps every manifest a reader resolves. Change-log
//! (`G`) records of reachable layers are kept (diff needs them).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{ErrorKind, FsError, Result};
use crate::fs::Fs;
use crate::meta::records::{ChunkManifest, Inode};
use crate::meta::{keys, HEAD, ROOT_LAYER};

/// Options of a GC run.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Unreferenced objects younger than this are kept (in-flight uploads).
    pub grace: Duration,
    /// Report what would be freed, delete nothing.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(15 * 60),
            dry_run: false,
        }
    }
}

/// What a GC run freed (or, in a dry run, would free).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Unreachable layers removed.
    pub layers: u64,
    /// Metadata records deleted (in removed layers and superseded versions).
    pub records: u64,
    /// Objects deleted.
    pub objects: u64,
    /// Bytes of the deleted objects.
    pub bytes: u64,
    /// Unreferenced objects kept because they are younger than the grace period.
    pub young_objects: u64,
    /// Whether this was a dry run.
    pub dry_run: bool,
}

/// Deletes per metadata transaction.
const BATCH: usize = 10_000;

impl Fs {
    /// Runs garbage collection (see the module docs) and reports what it freed.
    pub async fn gc(&self, opts: &GcOptions) -> Result<GcReport> {
        let meta = &self.inner.meta;
        let mut report = GcReport {
            dry_run: opts.dry_run,
            ..Default::default()
        };
        // Roots and readers, consistent with one moment (no operation in between).
        let (readers, unreachable, parentless) = {
            let _w = self.inner.writer.lock();
            let layers: HashMap<u64, Option<crate::meta::ReadPoint>> =
                meta.layer_parents().into_iter().collect();
            let mut readers: HashMap<u64, BTreeSet<u64>> = HashMap::new();
            for (_, w) in meta.workspaces() {
                readers.entry(w.head).or_default().insert(HEAD);
            }
            for (_, s) in meta.snapshots() {
                readers.entry(s.at.layer).or_default().insert(s.at.version);
            }
            let mut stack: Vec<u64> = readers.keys().copied().collect();
            let mut seen: HashSet<u64> = HashSet::new();
            while let Some(l) = stack.pop() {
                if !seen.insert(l) {
                    continue;
                }
                if let Some(Some(p)) = layers.get(&l) {
                    readers.entry(p.layer).or_default().insert(p.version);
                    stack.push(p.layer);
                }
            }
            let unreachable: Vec<u64> = layers
                .keys()
                .copied()
                .filter(|l| !seen.contains(l))
                .collect();
            let parentless: HashSet<u64> = layers
                .iter()
                .filter(|(_, p)| p.is_none())
                .map(|(l, _)| *l)
                .collect();
            (readers, unreachable, parentless)
        };
        let mut deletes: Vec<Vec<u8>> = Vec::new();
        // 1. Unreachable layers.
        for &l in &unreachable {
            for tag in [
                keys::tag::INODE,
                keys::tag::DENTRY,
                keys::tag::CHUNK,
                keys::tag::XATTR,
                keys::tag::CHANGE,
            ] {
                let mut prefix = vec![tag];
                prefix.extend_from_slice(&l.to_be_bytes());
                deletes.extend(meta.scan_all(&prefix)?.into_iter().map(|(k, _)| k));
            }
            deletes.push(keys::layer(l));
            report.layers += 1;
        }
        // 2. Versions no reader needs, in reachable layers.
        for (&l, rs) in &readers {
            self.prune_layer(l, rs, parentless.contains(&l), &mut deletes)?;
        }
        report.records = deletes.len() as u64;
        if !opts.dry_run {
            for batch in deletes.chunks(BATCH) {
                let mut txn = meta.txn(ROOT_LAYER);
                for k in batch {
                    txn.delete_raw(k.clone());
                }
                txn.commit()?;
            }
            meta.forget_layers(&unreachable);
            self.sync_metadata().await?;
        }
        let deleted: HashSet<Vec<u8>> = if opts.dry_run {
            deletes.into_iter().collect()
        } else {
            HashSet::new()
        };
        // 3. Objects.
        let mut referenced: HashSet<String> = HashSet::new();
        let data = &self.inner.data;
        let volume = &data.volume;
        for &l in readers.keys() {
            let mut prefix = vec![keys::tag::CHUNK];
            prefix.extend_from_slice(&l.to_be_bytes());
            for (k, v) in meta.scan_all(&prefix)? {
                if deleted.contains(&k) {
                    continue;
                }
                let chunk = keys::read_u64(&k, 17)
                    .ok_or_else(|| FsError::new(ErrorKind::Corrupt, "bad chunk key"))?;
                let m = ChunkManifest::decode(&v)?;
                for (i, b) in m.blocks.iter().enumerate() {
                    if let Some(b) = b {
                        let block = chunk * crate::data::BLOCKS_PER_CHUNK as u64 + i as u64;
                        referenced.insert(data.object_key(b.owner, b.generation, block));
                    }
                }
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let objects = &self.inner.data.objects;
        let listed = objects.list(&format!("blocks/{volume}/")).await?;
        for o in listed {
            if referenced.contains(&o.key) {
                continue;
            }
            if now.saturating_sub(o.modified_secs) < opts.grace.as_secs() {
                report.young_objects += 1;
                continue;
            }
            if !opts.dry_run {
                objects.delete(&o.key).await?;
            }
            report.objects += 1;
            report.bytes += o.size;
        }
        Ok(report)
    }

    /// Adds to `deletes` the record versions of reachable layer `l` that none of its
    /// readers `rs` needs.
    fn prune_layer(
        &self,
        l: u64,
        rs: &BTreeSet<u64>,
        parentless: bool,
        deletes: &mut Vec<Vec<u8>>,
    ) -> Result<()> {
        let meta = &self.inner.meta;
        // Inode records of this layer, per inode: (version, decoded or tombstone), newest first.
        let mut inodes: HashMap<u64, Vec<(u64, Option<Inode>)>> = HashMap::new();
        for tag in [
            keys::tag::INODE,
            keys::tag::DENTRY,
            keys::tag::CHUNK,
            keys::tag::XATTR,
        ] {
            let mut prefix = vec![tag];
            prefix.extend_from_slice(&l.to_be_bytes());
            let rows = meta.scan_all(&prefix)?;
            let mut i = 0;
            while i < rows.len() {
                let group = &rows[i].0[..rows[i].0.len() - 8];
                let mut j = i;
                while j < rows.len()
                    && rows[j].0.len() == group.len() + 8
                    && rows[j].0.starts_with(group)
                {
                    j += 1;
                }
                let versions: Vec<u64> = rows[i..j]
                    .iter()
                    .map(|(k, _)| keys::version_of(k).unwrap_or(0))
                    .collect();
                let ino = keys::read_u64(group, 9).unwrap_or(0);
                if tag == keys::tag::INODE {
                    let list = rows[i..j]
                        .iter()
                        .map(|(k, v)| Ok((keys::version_of(k).unwrap_or(0), Inode::decode(v)?)))
                        .collect::<Result<Vec<_>>>()?;
                    inodes.insert(ino, list);
                }
                for (n, &version) in versions.iter().enumerate() {
                    // Readers that see this version: rv >= version and rv < newer version.
                    let newer = if n == 0 { HEAD } else { versions[n - 1] - 1 };
                    let seen_by: Vec<u64> = rs.range(version..=newer).copied().collect();
                    let needed = seen_by.iter().any(|&rv| {
                        tag == keys::tag::INODE
                            || !droppable(tag, &inodes, ino, version, rv, parentless)
                    });
                    if !needed {
                        deletes.push(rows[i + n].0.clone());
                    }
                }
                i = j;
            }
        }
        Ok(())
    }
}

/// Whether record (`tag`, `version`) of `ino` no longer matters to a reader at `rv`,
/// judging by the inode's own record in the same layer.
fn droppable(
    tag: u8,
    inodes: &HashMap<u64, Vec<(u64, Option<Inode>)>>,
    ino: u64,
    version: u64,
    rv: u64,
    parentless: bool,
) -> bool {
    let own = inodes
        .get(&ino)
        .and_then(|list| list.iter().find(|(v, _)| *v <= rv));
    match own {
        // Deleted in this layer as the reader sees it: nothing of it matters.
        Some((_, None)) => true,
        // No inode record here: it lives below (keep), unless nothing is below.
        None => parentless,
        Some((_, Some(inode))) => tag == keys::tag::CHUNK && version < inode.data_epoch,
    }
}
