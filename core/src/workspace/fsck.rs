//! fsck: checks the numbered invariants of `docs/design.md` and reports violations
//! without changing anything.
//!
//! Checked: K1 (no key is a prefix of the next, every key belongs to a family), M3
//! (counters at or above every id and version in use), L1 (layer parents exist, chains are
//! acyclic, read points are not in the future), W1 (workspace heads, roots and junctions),
//! N1 (snapshot read points and roots), and per view (every workspace and snapshot tree):
//! T1 no dangling entry, T2 entry kinds match inodes, T3 link counts, T4 directory parent
//! pointers, D1 every object a reachable chunk manifest names exists.

use std::collections::{HashMap, HashSet};

use crate::error::Result;
use crate::fs::{Ctx, Fs};
use crate::meta::records::{ChunkManifest, Data, Dentry};
use crate::meta::{keys, HEAD};
use crate::types::FileType;

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's tag in `docs/design.md` (e.g. `T3`).
    pub invariant: &'static str,
    /// What is wrong, where.
    pub detail: String,
}

/// What fsck checked and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Every violation found (empty when the volume is consistent).
    pub violations: Vec<Violation>,
    /// Metadata keys scanned.
    pub keys: u64,
    /// Views walked (workspaces and snapshots).
    pub views: u64,
    /// Inodes visited, summed over views.
    pub inodes: u64,
    /// Distinct objects checked for existence.
    pub objects: u64,
}

impl FsckReport {
    /// Whether no violation was found.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    fn flag(&mut self, invariant: &'static str, detail: String) {
        if self.violations.len() < 10_000 {
            self.violations.push(Violation { invariant, detail });
        }
    }
}

impl Fs {
    /// Checks the volume's invariants (see the module docs). Read-only.
    pub async fn fsck(&self) -> Result<FsckReport> {
        self.sync_metadata().await?;
        let mut r = FsckReport::default();
        self.check_keys(&mut r)?;
        self.check_lineage(&mut r)?;
        let listed: HashSet<String> = self
            .inner
            .data
            .objects
            .list(&format!("blocks/{}/", self.inner.data.volume))
            .await?
            .into_iter()
            .map(|o| o.key)
            .collect();
        let mut needed: HashSet<String> = HashSet::new();
        let views: Vec<u64> = self
            .inner
            .meta
            .workspaces()
            .into_iter()
            .map(|(id, _)| id)
            .chain(self.inner.meta.snapshots().into_iter().map(|(id, _)| id))
            .collect();
        for v in views {
            let Ok(ctx) = self.ctx(v) else {
                r.flag("L1", format!("view {v}: its layer chain does not resolve"));
                continue;
            };
            r.views += 1;
            self.check_tree(&ctx, &mut r, &mut needed)?;
        }
        r.objects = needed.len() as u64;
        let mut missing: Vec<&String> = needed.iter().filter(|k| !listed.contains(*k)).collect();
        missing.sort();
        for k in missing {
            r.flag("D1", format!("referenced object {k} does not exist"));
        }
        Ok(r)
    }

    /// K1 and M3 over every key of the store.
    fn check_keys(&self, r: &mut FsckReport) -> Result<()> {
        let meta = &self.inner.meta;
        let counters = meta.counter_values();
        let (mut max_ino, mut max_version, mut max_layer, mut max_ws) = (0u64, 0u64, 0u64, 0u64);
        let mut prev: Option<Vec<u8>> = None;
        for (k, _) in meta.scan_all(&[])? {
            r.keys += 1;
            if let Some(p) = &prev {
                if k.starts_with(p) {
                    r.flag("K1", format!("key {p:02x?} is a prefix of {k:02x?}"));
                }
            }
            let tag = k.first().copied().unwrap_or(0);
            let id = keys::read_u64(&k, 1).unwrap_or(0);
            match tag {
                keys::tag::SYSTEM => {}
                keys::tag::LAYER => max_layer = max_layer.max(id),
                keys::tag::WORKSPACE | keys::tag::SNAPSHOT => max_ws = max_ws.max(id),
                keys::tag::ORPHAN => max_ino = max_ino.max(keys::read_u64(&k, 9).unwrap_or(0)),
                keys::tag::CHANGE => {
                    max_layer = max_layer.max(id);
                    max_version = max_version.max(keys::read_u64(&k, 9).unwrap_or(0));
                }
                keys::tag::INODE | keys::tag::DENTRY | keys::tag::CHUNK | keys::tag::XATTR => {
                    max_layer = max_layer.max(id);
                    max_version = max_version.max(keys::version_of(&k).unwrap_or(0));
                    if tag == keys::tag::INODE {
                        max_ino = max_ino.max(keys::read_u64(&k, 9).unwrap_or(0));
                    }
                }
                _ => r.flag("K1", format!("key {k:02x?} belongs to no family")),
            }
            prev = Some(k);
        }
        for (what, used, counter) in [
            ("inode", max_ino, counters.ino),
            ("version", max_version, counters.version),
            ("layer", max_layer, counters.layer),
            ("workspace", max_ws, counters.ws),
        ] {
            if used > counter {
                r.flag(
                    "M3",
                    format!("{what} {used} is in use but the counter is {counter}"),
                );
            }
        }
        Ok(())
    }

    /// L1, W1 and N1.
    fn check_lineage(&self, r: &mut FsckReport) -> Result<()> {
        let meta = &self.inner.meta;
        let current = meta.current_version();
        let layers: HashMap<u64, Option<crate::meta::ReadPoint>> =
            meta.layer_parents().into_iter().collect();
        for (&l, p) in &layers {
            let mut seen = HashSet::new();
            let mut cur = Some(l);
            while let Some(c) = cur {
                if !seen.insert(c) {
                    r.flag("L1", format!("layer {l}: its parent chain has a cycle"));
                    break;
                }
                cur = match layers.get(&c) {
                    Some(p) => p.map(|p| p.layer),
                    None => {
                        r.flag(
                            "L1",
                            format!("layer {l}: ancestor layer {c} does not exist"),
                        );
                        None
                    }
                };
            }
            if let Some(p) = p {
                if p.version > current {
                    r.flag(
                        "L1",
                        format!("layer {l} reads its parent at future version {}", p.version),
                    );
                }
            }
        }
        for (id, w) in meta.workspaces() {
            if !layers.contains_key(&w.head) {
                r.flag(
                    "W1",
                    format!("workspace {id}: head layer {} does not exist", w.head),
                );
                continue;
            }
            let chain = meta.chain(w.head, HEAD)?;
            match meta.inode(&chain, w.root)? {
                Some((i, _)) if i.kind == FileType::Dir => {}
                _ => r.flag(
                    "W1",
                    format!("workspace {id}: root inode {} is not a directory", w.root),
                ),
            }
            if let Some(m) = &w.mount {
                let ok = match meta.workspace(m.ws) {
                    Ok(p) => matches!(
                        meta.dentry(&meta.chain(p.head, HEAD)?, m.dir, &m.name)?,
                        Some((Dentry::Junction { ws, .. }, _)) if ws == id
                    ),
                    Err(_) => false,
                };
                if !ok {
                    r.flag(
                        "W1",
                        format!("workspace {id}: no junction at its mount point"),
                    );
                }
            }
        }
        for (id, s) in meta.snapshots() {
            if !layers.contains_key(&s.at.layer) || s.at.version > current {
                r.flag(
                    "N1",
                    format!("snapshot {}: read point {:?} is invalid", s.name, s.at),
                );
                continue;
            }
            let chain = meta.chain(s.at.layer, s.at.version)?;
            match meta.inode(&chain, s.root)? {
                Some((i, _)) if i.kind == FileType::Dir => {}
                _ => r.flag(
                    "N1",
                    format!("snapshot {} ({id}): root is not a directory", s.name),
                ),
            }
        }
        Ok(())
    }

    /// T1-T4 and the object references (D1) of one view's tree.
    fn check_tree(
        &self,
        ctx: &Ctx,
        r: &mut FsckReport,
        needed: &mut HashSet<String>,
    ) -> Result<()> {
        let meta = &self.inner.meta;
        let data = &self.inner.data;
        let mut links: HashMap<u64, u32> = HashMap::new();
        let mut nlinks: HashMap<u64, u32> = HashMap::new();
        let mut stack = vec![ctx.root];
        let mut visited: HashSet<u64> = HashSet::new();
        while let Some(dir) = stack.pop() {
            if !visited.insert(dir) {
                r.flag(
                    "T4",
                    format!("view {}: directory {dir} is reachable twice", ctx.ws),
                );
                continue;
            }
            let mut subdirs = 0u32;
            for (name, d) in self.entries(ctx, dir, true)? {
                let name = String::from_utf8_lossy(&name).into_owned();
                let (ino, kind) = match d {
                    Dentry::Child { ino, kind } => (ino, kind),
                    Dentry::Junction { .. } => {
                        subdirs += 1;
                        continue;
                    }
                    Dentry::Whiteout => continue,
                };
                let Some((inode, _)) = meta.inode(&ctx.chain, ino)? else {
                    r.flag("T1", format!("view {}: entry {name:?} of directory {dir} points at missing inode {ino}", ctx.ws));
                    continue;
                };
                r.inodes += 1;
                if inode.kind != kind {
                    r.flag(
                        "T2",
                        format!(
                            "view {}: entry {name:?} says {kind:?}, inode {ino} is {:?}",
                            ctx.ws, inode.kind
                        ),
                    );
                }
                *links.entry(ino).or_default() += 1;
                nlinks.insert(ino, inode.nlink);
                match inode.kind {
                    FileType::Dir => {
                        subdirs += 1;
                        if inode.parent != dir {
                            r.flag("T4", format!("view {}: directory {ino} ({name:?}) has parent pointer {} but lives in {dir}", ctx.ws, inode.parent));
                        }
                        stack.push(ino);
                    }
                    FileType::File if inode.data == Data::Blocks => {
                        let chunks = inode.size.div_ceil(crate::data::CHUNK_SIZE);
                        for c in 0..chunks {
                            if let Some((m, _)) =
                                meta.chunk(&ctx.chain, ino, c, inode.data_epoch)?
                            {
                                Self::note_blocks(data, c, &m, inode.size, needed);
                            }
                        }
                    }
                    _ => {}
                }
            }
            if let Some((d, _)) = meta.inode(&ctx.chain, dir)? {
                if d.nlink != 2 + subdirs {
                    r.flag(
                        "T3",
                        format!(
                            "view {}: directory {dir} has nlink {} but {} subdirectories",
                            ctx.ws, d.nlink, subdirs
                        ),
                    );
                }
            }
        }
        for (ino, n) in links {
            let nlink = nlinks.get(&ino).copied().unwrap_or(0);
            let is_dir = meta
                .inode(&ctx.chain, ino)?
                .is_some_and(|(i, _)| i.kind == FileType::Dir);
            if !is_dir && nlink != n {
                r.flag(
                    "T3",
                    format!(
                        "view {}: inode {ino} has nlink {nlink} but {n} entries",
                        ctx.ws
                    ),
                );
            }
        }
        Ok(())
    }

    /// Adds the objects that chunk `c` of a file reads (within `size`) to `needed`.
    fn note_blocks(
        data: &crate::data::DataPath,
        c: u64,
        m: &ChunkManifest,
        size: u64,
        needed: &mut HashSet<String>,
    ) {
        for (i, b) in m.blocks.iter().enumerate() {
            let block = c * crate::data::BLOCKS_PER_CHUNK as u64 + i as u64;
            if block * crate::data::BLOCK_SIZE as u64 >= size {
                break;
            }
            if let Some(b) = b {
                needed.insert(data.object_key(b.owner, b.generation, block));
            }
        }
    }
}
