//! The layered, versioned metadata model.
//!
//! Owns: the key codec ([`keys`]), record encodings ([`records`]), group commit
//! ([`commit`]), the in-memory layer and workspace tables, counters (versions, inode numbers,
//! generations), and reads *through a layer chain*.
//!
//! Model (see `docs/design.md`):
//! - Every committed transaction gets a volume-wide version `v`; every record it writes is
//!   keyed with `inv(v)` so the newest version sorts first.
//! - A layer has an optional parent read point `(layer, version)`. A read of layer `L` as of
//!   version `V` takes the newest record in `L` with version `<= V`, else continues in the
//!   parent at the parent's read point. Layers are never copied.
//! - A workspace writes into its head layer and reads through the chain
//!   `[(head, MAX), parent read point, grandparent read point, ...]`.
//!
//! Invariants maintained here:
//! - M1. (copy-up) Any `D`, `C` or `X` record of inode `n` written into a layer `L` is
//!   accompanied by an `I` record of `n` in `L` written by the same transaction (in a
//!   parentless layer, deleting an inode may leave its `C`/`X` records behind for GC). This
//!   lets a chain read skip a layer that has no `I` record of `n` (the per-layer "touched"
//!   set), so lookups stay cheap down long lineages.
//! - M2. A record version that a pin (a child layer's read point, later a snapshot) can see
//!   is never deleted by a write; unpinned superseded versions are deleted by the write that
//!   supersedes them.
//! - M3. Counters (`version`, `ino`, `gen`, `layer`, `ws`) persisted in the store are never
//!   below a value handed out: each transaction that takes a value writes the new counter in
//!   the same atomic commit (generations are reserved durably in ranges before use).

pub(crate) mod codec;
pub(crate) mod commit;
pub(crate) mod keys;
pub(crate) mod records;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::error::{ErrorKind, FsError, Result};
use crate::store::{MetaStore, Op};
use crate::types::ROOT_INO;
pub(crate) use commit::{Barrier, ObjectBarrier};
use commit::{Committer, Seq};
pub use records::ReadPoint;
use records::{ChunkManifest, Dentry, Inode, LayerRecord, SnapshotRecord, WorkspaceRecord};

/// Layer id of the root workspace's first head layer.
pub(crate) const ROOT_LAYER: u64 = 1;
/// The root workspace id.
pub(crate) const ROOT_WS: u64 = 0;
/// Version meaning "the newest" (a head read point).
pub(crate) const HEAD: u64 = u64::MAX;

/// In-memory view of a layer.
#[derive(Debug)]
pub(crate) struct LayerInfo {
    pub parent: Option<ReadPoint>,
    /// Inodes with an `I` record in this layer (M1); `None` for parentless layers, which are
    /// always the end of a chain and so always searched.
    touched: Option<RwLock<Touched>>,
    /// Highest version of this layer that some pin can read (M2); 0 when unpinned.
    pin_floor: u64,
}

/// What a layer with a parent holds records of (M1): inodes with `I` records, and
/// `(dir, name hash)` pairs with `D` records, so a lookup down a long lineage seeks only the
/// layers that changed that very entry.
#[derive(Debug, Default)]
struct Touched {
    inos: HashSet<u64>,
    names: HashSet<(u64, u64)>,
}

/// What a chain read looks for, to skip layers that cannot have it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Probe {
    /// Any record of an inode (`I`, `C`, `X`).
    Ino(u64),
    /// The entry with this name hash in this directory (`D`).
    Name(u64, u64),
}

impl From<u64> for Probe {
    fn from(ino: u64) -> Self {
        Probe::Ino(ino)
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Counters {
    pub version: u64,
    pub ino: u64,
    /// Last data generation handed out.
    generation: u64,
    /// Generations up to this are reserved durably: only these are handed out.
    gen_durable: u64,
    /// The reservation being made durable (>= `gen_durable`); every transaction persists
    /// this value, so a later transaction never lowers an in-flight reservation.
    gen_ceiling: u64,
    pub layer: u64,
    pub ws: u64,
}

/// Generations reserved per durable reservation.
const GEN_RESERVE: u64 = 65_536;

const COUNTERS: [&str; 5] = ["version", "ino", "gen", "layer", "ws"];
/// System key recording how the volume names its block objects (`data::ObjectLayout`).
const OBJECT_LAYOUT: &str = "objects";

/// The metadata model over a store.
pub(crate) struct Meta {
    pub commit: Committer,
    layers: RwLock<HashMap<u64, LayerInfo>>,
    workspaces: RwLock<HashMap<u64, WorkspaceRecord>>,
    /// Snapshots by view id (ids come from the workspace id counter).
    snapshots: RwLock<HashMap<u64, SnapshotRecord>>,
    counters: Mutex<Counters>,
    /// Serializes durable reservations of generation ranges.
    gen_reserve: tokio::sync::Mutex<()>,
}

/// A record found by a chain read: where, at which version, and its bytes.
pub(crate) struct Found {
    pub layer: u64,
    pub version: u64,
    pub value: Vec<u8>,
}

impl Meta {
    /// Loads (or initialises) the model from `store`.
    pub fn open(
        store: Arc<dyn MetaStore>,
        now: crate::types::Timestamp,
        owner: (u32, u32),
        barrier: commit::Barrier,
        new_object_layout: u64,
    ) -> Result<Meta> {
        let commit = Committer::new(store, barrier);
        let meta = Meta {
            commit,
            layers: RwLock::new(HashMap::new()),
            workspaces: RwLock::new(HashMap::new()),
            snapshots: RwLock::new(HashMap::new()),
            counters: Mutex::new(Counters::default()),
            gen_reserve: tokio::sync::Mutex::new(()),
        };
        if meta.commit.get(&keys::system("version"))?.is_none() {
            meta.format(now, owner, new_object_layout)?;
        }
        meta.load()?;
        Ok(meta)
    }

    /// The object layout number recorded when the volume was formatted; 1 for volumes
    /// formatted before it was recorded.
    pub fn object_layout(&self) -> Result<u64> {
        match self.commit.get(&keys::system(OBJECT_LAYOUT))? {
            Some(v) => records::decode_counter(&v),
            None => Ok(1),
        }
    }

    /// Writes the root layer, root workspace and root directory of a new volume.
    fn format(
        &self,
        now: crate::types::Timestamp,
        (uid, gid): (u32, u32),
        object_layout: u64,
    ) -> Result<()> {
        let version = 1;
        let root = Inode {
            kind: crate::types::FileType::Dir,
            perm: 0o755,
            uid,
            gid,
            nlink: 2,
            size: 0,
            atime: now,
            mtime: now,
            ctime: now,
            btime: now,
            rdev: 0,
            generation: 1,
            parent: ROOT_INO,
            name: Vec::new(),
            data_epoch: 0,
            data: records::Data::Blocks,
        };
        let ops = vec![
            Op::Put(
                keys::layer(ROOT_LAYER),
                LayerRecord {
                    parent: None,
                    created: version,
                }
                .encode(),
            ),
            Op::Put(
                keys::workspace(ROOT_WS),
                WorkspaceRecord {
                    head: ROOT_LAYER,
                    root: ROOT_INO,
                    created: version,
                    mount: None,
                    base: None,
                }
                .encode(),
            ),
            Op::Put(
                keys::versioned(keys::inode_prefix(ROOT_LAYER, ROOT_INO), version),
                root.encode(),
            ),
            Op::Put(keys::system("version"), records::encode_counter(version)),
            Op::Put(keys::system("ino"), records::encode_counter(ROOT_INO)),
            Op::Put(keys::system("gen"), records::encode_counter(1)),
            Op::Put(keys::system("layer"), records::encode_counter(ROOT_LAYER)),
            Op::Put(keys::system("ws"), records::encode_counter(ROOT_WS)),
            Op::Put(
                keys::system(OBJECT_LAYOUT),
                records::encode_counter(object_layout),
            ),
        ];
        let seq = self.commit.submit(ops)?;
        self.commit.wait_durable_blocking(seq)?;
        Ok(())
    }

    fn load(&self) -> Result<()> {
        let mut c = Counters::default();
        for (i, name) in COUNTERS.iter().enumerate() {
            let v = self.commit.get(&keys::system(name))?.ok_or_else(|| {
                FsError::new(ErrorKind::Corrupt, format!("missing counter {name}"))
            })?;
            let v = records::decode_counter(&v)?;
            match i {
                0 => c.version = v,
                1 => c.ino = v,
                2 => {
                    c.generation = v;
                    c.gen_durable = v;
                    c.gen_ceiling = v;
                }
                3 => c.layer = v,
                _ => c.ws = v,
            }
        }
        *self.counters.lock() = c;
        let mut layers = HashMap::new();
        for (k, v) in self.scan_all(&[keys::tag::LAYER])? {
            let id = keys::read_u64(&k, 1)
                .ok_or_else(|| FsError::new(ErrorKind::Corrupt, "bad layer key"))?;
            let rec = LayerRecord::decode(&v)?;
            layers.insert(id, rec);
        }
        let mut table = HashMap::new();
        for (id, rec) in layers {
            let touched = match rec.parent {
                None => None,
                Some(_) => {
                    let mut t = Touched::default();
                    for (k, _) in self.scan_all(&keys::inode_layer_prefix(id))? {
                        if let Some(ino) = keys::read_u64(&k, 9) {
                            t.inos.insert(ino);
                        }
                    }
                    let mut dprefix = vec![keys::tag::DENTRY];
                    dprefix.extend_from_slice(&id.to_be_bytes());
                    for (k, _) in self.scan_all(&dprefix)? {
                        if let (Some(dir), Some(h)) =
                            (keys::read_u64(&k, 9), keys::read_u64(&k, 17))
                        {
                            t.names.insert((dir, h));
                        }
                    }
                    Some(RwLock::new(t))
                }
            };
            table.insert(
                id,
                LayerInfo {
                    parent: rec.parent,
                    touched,
                    pin_floor: 0,
                },
            );
        }
        *self.layers.write() = table;
        let mut wss = HashMap::new();
        for (k, v) in self.scan_all(&[keys::tag::WORKSPACE])? {
            let id = keys::read_u64(&k, 1)
                .ok_or_else(|| FsError::new(ErrorKind::Corrupt, "bad workspace key"))?;
            wss.insert(id, WorkspaceRecord::decode(&v)?);
        }
        if !wss.contains_key(&ROOT_WS) {
            return Err(FsError::new(
                ErrorKind::Corrupt,
                "root workspace record missing",
            ));
        }
        *self.workspaces.write() = wss;
        let mut snaps = HashMap::new();
        for (k, v) in self.scan_all(&[keys::tag::SNAPSHOT])? {
            let id = keys::read_u64(&k, 1)
                .ok_or_else(|| FsError::new(ErrorKind::Corrupt, "bad snapshot key"))?;
            snaps.insert(id, SnapshotRecord::decode(&v)?);
        }
        *self.snapshots.write() = snaps;
        self.recompute_pins();
        Ok(())
    }

    /// Recomputes every layer's pin floor (M2) from child layers' read points and
    /// snapshots. Floors only matter as upper bounds of what writes may delete, so this is
    /// needed only when pins go away (snapshot deletion, layer pruning) or at load.
    pub fn recompute_pins(&self) {
        let snaps: Vec<ReadPoint> = self.snapshots.read().values().map(|s| s.at).collect();
        let mut layers = self.layers.write();
        let mut floors: HashMap<u64, u64> = HashMap::new();
        let pins = layers
            .values()
            .filter_map(|l| l.parent)
            .chain(snaps)
            .collect::<Vec<_>>();
        for p in pins {
            let f = floors.entry(p.layer).or_default();
            *f = (*f).max(p.version);
        }
        for (id, l) in layers.iter_mut() {
            l.pin_floor = floors.get(id).copied().unwrap_or(0);
        }
    }

    /// Raises the pin floor of `at.layer` to cover `at` (a new pin).
    fn pin(&self, at: ReadPoint) -> Result<()> {
        let mut layers = self.layers.write();
        let l = layers.get_mut(&at.layer).ok_or_else(|| {
            FsError::new(ErrorKind::NotFound, format!("layer {} missing", at.layer))
        })?;
        l.pin_floor = l.pin_floor.max(at.version);
        Ok(())
    }

    /// Every workspace record.
    pub fn workspaces(&self) -> Vec<(u64, WorkspaceRecord)> {
        let mut v: Vec<_> = self
            .workspaces
            .read()
            .iter()
            .map(|(k, w)| (*k, w.clone()))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// Every snapshot record.
    pub fn snapshots(&self) -> Vec<(u64, SnapshotRecord)> {
        let mut v: Vec<_> = self
            .snapshots
            .read()
            .iter()
            .map(|(k, s)| (*k, s.clone()))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// The snapshot record of view `id`, if `id` is a snapshot.
    pub fn snapshot(&self, id: u64) -> Option<SnapshotRecord> {
        self.snapshots.read().get(&id).cloned()
    }

    /// The view id of the snapshot called `name`.
    pub fn snapshot_by_name(&self, name: &str) -> Option<(u64, SnapshotRecord)> {
        self.snapshots
            .read()
            .iter()
            .find(|(_, s)| s.name == name)
            .map(|(k, s)| (*k, s.clone()))
    }

    /// Every layer and its parent read point.
    pub fn layer_parents(&self) -> Vec<(u64, Option<ReadPoint>)> {
        let mut v: Vec<_> = self
            .layers
            .read()
            .iter()
            .map(|(k, l)| (*k, l.parent))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// The inodes changed in `layer` by transactions with versions in `(after, upto]`,
    /// from the change log (`G`): O(those transactions).
    pub fn changes(&self, layer: u64, after: u64, upto: u64) -> Result<BTreeSet<u64>> {
        let mut prefix = vec![keys::tag::CHANGE];
        prefix.extend_from_slice(&layer.to_be_bytes());
        let mut start = keys::change(layer, after.saturating_add(1));
        let mut out = BTreeSet::new();
        if after >= upto {
            return Ok(out);
        }
        loop {
            let page = self.commit.scan(&prefix, &start, 1024)?;
            let n = page.len();
            for (k, v) in &page {
                let version = keys::read_u64(k, 9)
                    .ok_or_else(|| FsError::new(ErrorKind::Corrupt, "bad change-log key"))?;
                if version > upto {
                    return Ok(out);
                }
                out.extend(records::decode_change(v)?);
            }
            match page.last() {
                Some((k, _)) if n == 1024 => {
                    start = k.clone();
                    start.push(0);
                }
                _ => return Ok(out),
            }
        }
    }

    /// Copies into `txn`, as records of layer `to`, the newest version of every record of
    /// `ino` in layer `from` (its `I`, `C` and `X` records, and its `D` records as a
    /// directory) whose newest version is above `after`. `map` sees each record's prefix in
    /// `from` and its value, and returns the value to write, or `None` to skip it.
    pub fn copy_newer(
        &self,
        txn: &mut Txn<'_>,
        from: u64,
        to: u64,
        ino: u64,
        after: u64,
        map: impl Fn(&[u8], &[u8]) -> Option<Vec<u8>>,
    ) -> Result<()> {
        let prefixes = [
            keys::inode_prefix(from, ino),
            keys::chunk_ino_prefix(from, ino),
            keys::xattr_ino_prefix(from, ino),
            keys::dentry_dir_prefix(from, ino),
        ];
        txn.set_layer(to);
        for prefix in prefixes {
            let mut last: Option<Vec<u8>> = None;
            for (k, v) in self.scan_all(&prefix)? {
                let group = k[..k.len() - 8].to_vec();
                if last.as_ref() == Some(&group) {
                    continue;
                }
                last = Some(group.clone());
                let version = keys::version_of(&k).unwrap_or(0);
                if version <= after {
                    continue;
                }
                let Some(value) = map(&group, &v) else {
                    continue;
                };
                let mut target = group.clone();
                target[1..9].copy_from_slice(&to.to_be_bytes());
                if group[0] == keys::tag::DENTRY {
                    if let Some(h) = keys::read_u64(&group, 17) {
                        txn.names.push((to, ino, h));
                    }
                }
                txn.put_record(ino, target, value, None);
            }
        }
        Ok(())
    }

    /// Forgets pruned layers (their records are deleted by the caller's transaction).
    pub fn forget_layers(&self, ids: &[u64]) {
        let mut layers = self.layers.write();
        for id in ids {
            layers.remove(id);
        }
        drop(layers);
        self.recompute_pins();
    }

    /// Every entry under `prefix` (paged).
    pub fn scan_all(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut start = prefix.to_vec();
        loop {
            let page = self.commit.scan(prefix, &start, 4096)?;
            let n = page.len();
            if let Some((k, _)) = page.last() {
                start = k.clone();
                start.push(0);
            }
            out.extend(page);
            if n < 4096 {
                return Ok(out);
            }
        }
    }

    /// The workspace record of `ws`.
    pub fn workspace(&self, ws: u64) -> Result<WorkspaceRecord> {
        self.workspaces
            .read()
            .get(&ws)
            .cloned()
            .ok_or_else(|| FsError::new(ErrorKind::Stale, format!("workspace {ws} does not exist")))
    }

    /// The read chain of a layer read at `version`: itself, then its ancestors' read points.
    pub fn chain(&self, layer: u64, version: u64) -> Result<Vec<ReadPoint>> {
        let layers = self.layers.read();
        let mut out = vec![ReadPoint { layer, version }];
        let mut cur = layer;
        loop {
            let info = layers.get(&cur).ok_or_else(|| {
                FsError::new(
                    ErrorKind::Corrupt,
                    format!("layer {cur} missing from the chain"),
                )
            })?;
            match info.parent {
                Some(p) => {
                    if out.len() > 4096 {
                        return Err(FsError::new(ErrorKind::Corrupt, "layer chain does not end"));
                    }
                    out.push(p);
                    cur = p.layer;
                }
                None => return Ok(out),
            }
        }
    }

    /// Whether `layer` may hold what `probe` looks for (M1).
    fn may_have(&self, layer: u64, probe: Probe) -> bool {
        let layers = self.layers.read();
        match layers.get(&layer).and_then(|l| l.touched.as_ref()) {
            Some(t) => {
                let t = t.read();
                match probe {
                    Probe::Ino(ino) => t.inos.contains(&ino),
                    Probe::Name(dir, h) => t.names.contains(&(dir, h)),
                }
            }
            None => true,
        }
    }

    /// Whether `layer` may hold records of `ino` (for listings).
    pub fn may_have_pub(&self, layer: u64, ino: u64) -> bool {
        self.may_have(layer, Probe::Ino(ino))
    }

    /// The newest record visible through `chain` for the object `ino` whose per-layer key
    /// prefix is `prefix_of(layer)`.
    pub fn read_versioned(
        &self,
        chain: &[ReadPoint],
        probe: impl Into<Probe>,
        prefix_of: impl Fn(u64) -> Vec<u8>,
    ) -> Result<Option<Found>> {
        let probe = probe.into();
        for rp in chain {
            if !self.may_have(rp.layer, probe) {
                continue;
            }
            let prefix = prefix_of(rp.layer);
            let start = keys::versioned(prefix.clone(), rp.version);
            if let Some((k, v)) = self.commit.scan(&prefix, &start, 1)?.into_iter().next() {
                let version = keys::version_of(&k).unwrap_or(0);
                return Ok(Some(Found {
                    layer: rp.layer,
                    version,
                    value: v,
                }));
            }
        }
        Ok(None)
    }

    /// The inode `ino` as seen through `chain`, with where it was found.
    pub fn inode(&self, chain: &[ReadPoint], ino: u64) -> Result<Option<(Inode, Found)>> {
        match self.read_versioned(chain, ino, |l| keys::inode_prefix(l, ino))? {
            Some(f) => Ok(Inode::decode(&f.value)?.map(|i| (i, f))),
            None => Ok(None),
        }
    }

    /// The entry `name` of directory `dir` through `chain` (`None` if absent or whited out).
    /// The raw entry record `name` of `dir` (including whiteouts).
    pub fn dentry_record(
        &self,
        chain: &[ReadPoint],
        dir: u64,
        name: &[u8],
    ) -> Result<Option<Found>> {
        let probe = Probe::Name(dir, keys::name_hash(name));
        self.read_versioned(chain, probe, |l| keys::dentry_prefix(l, dir, name))
    }

    pub fn dentry(
        &self,
        chain: &[ReadPoint],
        dir: u64,
        name: &[u8],
    ) -> Result<Option<(Dentry, Found)>> {
        match self.dentry_record(chain, dir, name)? {
            Some(f) => match Dentry::decode(&f.value)? {
                Dentry::Whiteout => Ok(None),
                d => Ok(Some((d, f))),
            },
            None => Ok(None),
        }
    }

    /// The manifest of chunk `chunk` of `ino`, ignoring records older than `epoch`.
    pub fn chunk(
        &self,
        chain: &[ReadPoint],
        ino: u64,
        chunk: u64,
        epoch: u64,
    ) -> Result<Option<(ChunkManifest, Found)>> {
        match self.read_versioned(chain, ino, |l| keys::chunk_prefix(l, ino, chunk))? {
            Some(f) if f.version >= epoch => Ok(Some((ChunkManifest::decode(&f.value)?, f))),
            _ => Ok(None),
        }
    }

    /// The xattr `name` of `ino` (`None` if absent or removed).
    pub fn xattr(
        &self,
        chain: &[ReadPoint],
        ino: u64,
        name: &[u8],
    ) -> Result<Option<(Vec<u8>, Found)>> {
        match self.read_versioned(chain, ino, |l| keys::xattr_prefix(l, ino, name))? {
            Some(f) => Ok(records::decode_xattr(&f.value)?.map(|v| (v, f))),
            None => Ok(None),
        }
    }

    /// Starts a transaction writing into `layer`.
    pub fn txn(&self, layer: u64) -> Txn<'_> {
        let version = {
            let mut c = self.counters.lock();
            c.version += 1;
            c.version
        };
        Txn {
            meta: self,
            layer,
            version,
            ops: Vec::new(),
            changed: HashMap::new(),
            names: Vec::new(),
        }
    }

    /// Allocates a fresh inode number, persisted by `_txn` (which writes every counter, M3).
    pub fn alloc_ino(&self, _txn: &mut Txn<'_>) -> Result<u64> {
        self.next_id(|c| &mut c.ino, crate::types::MAX_INO, "inode numbers")
    }

    fn next_id(
        &self,
        pick: impl FnOnce(&mut Counters) -> &mut u64,
        max: u64,
        what: &str,
    ) -> Result<u64> {
        let mut c = self.counters.lock();
        let v = pick(&mut c);
        if *v >= max {
            return Err(FsError::new(
                ErrorKind::NoSpace,
                format!("{what} exhausted"),
            ));
        }
        *v += 1;
        Ok(*v)
    }

    /// Allocates a fresh data generation. Generations are reserved in durable ranges
    /// before use, so a crash can never lead to an object key being written twice.
    pub async fn alloc_generation(&self) -> Result<u64> {
        loop {
            {
                let mut c = self.counters.lock();
                if c.generation < c.gen_durable {
                    c.generation += 1;
                    return Ok(c.generation);
                }
            }
            // One reservation at a time; others wait for it and then allocate.
            let _reserving = self.gen_reserve.lock().await;
            let target = {
                let mut c = self.counters.lock();
                if c.generation < c.gen_durable {
                    continue;
                }
                c.gen_ceiling = c.gen_durable + GEN_RESERVE;
                c.gen_ceiling
            };
            let op = Op::Put(keys::system("gen"), records::encode_counter(target));
            let seq = self.commit.submit(vec![op])?;
            self.commit.wait_durable(seq).await?;
            self.counters.lock().gen_durable = target;
        }
    }

    fn counter_ops(&self, ops: &mut Vec<Op>) {
        let c = self.counters.lock();
        for (name, v) in COUNTERS
            .iter()
            .zip([c.version, c.ino, c.gen_ceiling, c.layer, c.ws])
        {
            ops.push(Op::Put(keys::system(name), records::encode_counter(v)));
        }
    }

    /// Registers (or replaces) a workspace record.
    pub fn put_workspace(&self, txn: &mut Txn<'_>, ws: u64, rec: WorkspaceRecord) {
        txn.ops.push(Op::Put(keys::workspace(ws), rec.encode()));
        self.workspaces.write().insert(ws, rec);
    }

    /// Removes a workspace record (its layers stay until GC finds them unreachable).
    pub fn delete_workspace(&self, txn: &mut Txn<'_>, ws: u64) {
        txn.ops.push(Op::Delete(keys::workspace(ws)));
        self.workspaces.write().remove(&ws);
    }

    /// Registers a snapshot (a pin of `rec.at`).
    pub fn put_snapshot(&self, txn: &mut Txn<'_>, id: u64, rec: SnapshotRecord) -> Result<()> {
        self.pin(rec.at)?;
        txn.ops.push(Op::Put(keys::snapshot(id), rec.encode()));
        self.snapshots.write().insert(id, rec);
        Ok(())
    }

    /// Removes a snapshot (unpin; what only it could read becomes garbage).
    pub fn delete_snapshot(&self, txn: &mut Txn<'_>, id: u64) {
        txn.ops.push(Op::Delete(keys::snapshot(id)));
        self.snapshots.write().remove(&id);
    }

    /// Allocates a view id (workspace or snapshot), persisted by `_txn` (which writes every
    /// counter, M3).
    pub fn alloc_workspace(&self, _txn: &mut Txn<'_>) -> Result<u64> {
        // The top id belongs to the `/.nokv` control namespace.
        self.next_id(
            |c| &mut c.ws,
            crate::types::MAX_WORKSPACE - 1,
            "workspace ids",
        )
    }

    /// The counters' current values.
    pub fn counter_values(&self) -> Counters {
        self.counters.lock().clone()
    }

    /// Inode numbers handed out so far.
    pub fn inode_counter(&self) -> u64 {
        self.counters.lock().ino
    }

    /// The current version (newest committed or submitted transaction).
    pub fn current_version(&self) -> u64 {
        self.counters.lock().version
    }

    fn pin_floor(&self, layer: u64) -> u64 {
        self.layers.read().get(&layer).map_or(0, |l| l.pin_floor)
    }

    fn mark_touched(&self, layer: u64, inos: &BTreeSet<u64>, names: &[(u64, u64)]) {
        if let Some(info) = self.layers.read().get(&layer) {
            if let Some(t) = &info.touched {
                let mut t = t.write();
                t.inos.extend(inos.iter().copied());
                t.names.extend(names.iter().copied());
            }
        }
    }
}

/// A metadata transaction writing into one layer at one new version.
///
/// Built under the core's writer lock, then submitted to the group committer as one
/// atomic unit. Every `put_*` records the inode it concerns in the change log (`G`).
pub(crate) struct Txn<'a> {
    meta: &'a Meta,
    pub layer: u64,
    pub version: u64,
    ops: Vec<Op>,
    /// Inodes changed, per layer written (change log and touched sets).
    changed: HashMap<u64, BTreeSet<u64>>,
    /// `(layer, dir, name hash)` of every entry written (for the layers' touched sets).
    names: Vec<(u64, u64, u64)>,
}

impl Txn<'_> {
    /// Directs the following record writes at `layer` (a transaction may write several
    /// layers, e.g. a clone that grafts nested workspaces into the new layer).
    pub fn set_layer(&mut self, layer: u64) {
        self.layer = layer;
    }

    fn note_changed(&mut self, ino: u64) {
        self.changed.entry(self.layer).or_default().insert(ino);
    }

    /// Whether this transaction's layer reads through a parent (so removals need whiteouts
    /// or tombstones to hide inherited records).
    fn layer_has_parent(&self) -> bool {
        self.meta
            .layers
            .read()
            .get(&self.layer)
            .is_some_and(|l| l.parent.is_some())
    }

    /// Writes a new version of a record at `prefix` (of inode `ino`); `prev` is where the
    /// currently visible version was found, so an unpinned superseded version in this layer
    /// is deleted (M2).
    fn put_record(&mut self, ino: u64, prefix: Vec<u8>, value: Vec<u8>, prev: Option<&Found>) {
        if let Some(p) = prev {
            if p.layer == self.layer
                && p.version != self.version
                && p.version > self.meta.pin_floor(self.layer)
            {
                self.ops
                    .push(Op::Delete(keys::versioned(prefix.clone(), p.version)));
            }
        }
        self.ops
            .push(Op::Put(keys::versioned(prefix, self.version), value));
        self.note_changed(ino);
    }

    /// Writes inode `ino` (copy-up when it was inherited).
    pub fn put_inode(&mut self, ino: u64, inode: &Inode, prev: Option<&Found>) {
        self.put_record(
            ino,
            keys::inode_prefix(self.layer, ino),
            inode.encode(),
            prev,
        );
    }

    /// Removes inode `ino`: a tombstone when something below or a pin could still see it,
    /// otherwise just the deletion of the superseded version.
    pub fn delete_inode(&mut self, ino: u64, prev: Option<&Found>) {
        let prefix = keys::inode_prefix(self.layer, ino);
        match prev {
            Some(p) if !self.layer_has_parent() && self.removable(&prefix, p) => {
                self.ops
                    .push(Op::Delete(keys::versioned(prefix, p.version)));
                self.note_changed(ino);
            }
            None if !self.layer_has_parent() => self.note_changed(ino),
            _ => self.put_record(ino, prefix, Inode::tombstone(), prev),
        }
    }

    /// Whether the visible version `prev` of the record at `prefix` can simply be deleted
    /// (instead of hidden by a whiteout or tombstone): it is in this layer, no pin can see
    /// it, and no older version of the record remains in the layer (a pinned older version
    /// would reappear). Errs on the side of a whiteout.
    fn removable(&self, prefix: &[u8], prev: &Found) -> bool {
        if prev.layer != self.layer || prev.version <= self.meta.pin_floor(self.layer) {
            return false;
        }
        let start = keys::versioned(prefix.to_vec(), prev.version.saturating_sub(1));
        matches!(self.meta.commit.scan(prefix, &start, 1), Ok(rows) if rows.is_empty())
    }

    /// Writes the entry `name` of `dir`.
    pub fn put_dentry(&mut self, dir: u64, name: &[u8], d: Dentry, prev: Option<&Found>) {
        self.names.push((self.layer, dir, keys::name_hash(name)));
        self.put_record(
            dir,
            keys::dentry_prefix(self.layer, dir, name),
            d.encode(),
            prev,
        );
    }

    /// Removes the entry `name` of `dir`: a whiteout when a lower layer, a pin or an older
    /// version in this layer could otherwise show it.
    pub fn delete_dentry(&mut self, dir: u64, name: &[u8], prev: &Found) {
        self.names.push((self.layer, dir, keys::name_hash(name)));
        let prefix = keys::dentry_prefix(self.layer, dir, name);
        if !self.layer_has_parent() && self.removable(&prefix, prev) {
            self.ops
                .push(Op::Delete(keys::versioned(prefix, prev.version)));
            self.note_changed(dir);
        } else {
            self.put_record(dir, prefix, Dentry::Whiteout.encode(), Some(prev));
        }
    }

    /// Writes chunk manifest `chunk` of `ino`.
    pub fn put_chunk(&mut self, ino: u64, chunk: u64, m: &ChunkManifest, prev: Option<&Found>) {
        self.put_record(
            ino,
            keys::chunk_prefix(self.layer, ino, chunk),
            m.encode(),
            prev,
        );
    }

    /// Writes (or with `None`, whites out) xattr `name` of `ino`.
    pub fn put_xattr(&mut self, ino: u64, name: &[u8], value: Option<&[u8]>, prev: Option<&Found>) {
        let prefix = keys::xattr_prefix(self.layer, ino, name);
        if value.is_none() && !self.layer_has_parent() {
            if let Some(p) = prev {
                if self.removable(&prefix, p) {
                    self.ops
                        .push(Op::Delete(keys::versioned(prefix, p.version)));
                    self.note_changed(ino);
                    return;
                }
            }
        }
        self.put_record(ino, prefix, records::encode_xattr(value), prev);
    }

    /// Records that `ino` of workspace `ws` is unlinked but open (reaped later).
    pub fn put_orphan_of(&mut self, ws: u64, ino: u64) {
        self.ops.push(Op::Put(keys::orphan(ws, ino), Vec::new()));
    }

    /// Creates a layer whose reads fall through to `parent`, in this transaction (O(1): one
    /// record). This is the primitive under clone, rollback and promote: nothing is copied.
    pub fn create_layer(&mut self, parent: Option<ReadPoint>) -> Result<u64> {
        let id = self
            .meta
            .next_id(|c| &mut c.layer, u64::MAX - 1, "layer ids")?;
        let rec = LayerRecord {
            parent,
            created: self.version,
        };
        if let Some(p) = parent {
            self.meta.pin(p)?;
        }
        self.ops.push(Op::Put(keys::layer(id), rec.encode()));
        self.meta.layers.write().insert(
            id,
            LayerInfo {
                parent,
                touched: parent.map(|_| RwLock::new(Touched::default())),
                pin_floor: 0,
            },
        );
        Ok(id)
    }

    /// Removes a raw key (used for pruning records the caller proved unreachable).
    pub fn delete_raw(&mut self, key: Vec<u8>) {
        self.ops.push(Op::Delete(key));
    }

    /// Submits the transaction (visible at once, durable at the next group commit).
    pub fn commit(mut self) -> Result<Seq> {
        for (layer, inos) in &self.changed {
            let inos: Vec<u64> = inos.iter().copied().collect();
            self.ops.push(Op::Put(
                keys::change(*layer, self.version),
                records::encode_change(&inos),
            ));
        }
        self.meta.counter_ops(&mut self.ops);
        for (layer, inos) in &self.changed {
            let names: Vec<(u64, u64)> = self
                .names
                .iter()
                .filter(|n| n.0 == *layer)
                .map(|n| (n.1, n.2))
                .collect();
            self.meta.mark_touched(*layer, inos, &names);
        }
        Ok(self.meta.commit.submit(std::mem::take(&mut self.ops))?)
    }
}
