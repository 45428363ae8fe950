//! Record values of every metadata family and their encodings.
//!
//! Byte layouts are listed in `docs/design.md` ("Record values"). Every record except the
//! 8-byte counters starts with a format byte so the layout can evolve; decoding validates
//! lengths and enum tags.

use super::codec::{Dec, Enc};
use crate::error::FsError;
use crate::types::{FileType, Timestamp};

const FORMAT: u8 = 1;
const TOMBSTONE: u8 = 0xff;

/// Where a file's bytes live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Data {
    /// In chunk manifests (`C` records) newer than `Inode::data_epoch`, or holes.
    Blocks,
    /// Inline in the inode record (small files, symlink targets).
    Inline(Vec<u8>),
}

/// An inode record (`I` family). `None` in the store's place means a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inode {
    pub kind: FileType,
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub btime: Timestamp,
    pub rdev: u64,
    /// Creation generation (volume-unique), part of NFS handles.
    pub generation: u64,
    /// Parent directory of the most recent link (for paths in diffs and `..`).
    pub parent: u64,
    /// Name under `parent`.
    pub name: Vec<u8>,
    /// Chunk manifests written at versions below this are ignored (truncate to zero, inline).
    pub data_epoch: u64,
    pub data: Data,
}

fn put_ts(e: &mut Enc, t: Timestamp) {
    e.i64(t.secs).u32(t.nanos);
}

fn get_ts(d: &mut Dec<'_>) -> Result<Timestamp, FsError> {
    let secs = d.i64()?;
    let nanos = d.u32()?;
    if nanos >= 1_000_000_000 {
        return Err(d.corrupt());
    }
    Ok(Timestamp { secs, nanos })
}

impl Inode {
    pub fn encode(&self) -> Vec<u8> {
        let inline = match &self.data {
            Data::Inline(b) => b.len(),
            Data::Blocks => 0,
        };
        let mut e = Enc::with_capacity(128 + self.name.len() + inline);
        e.u8(FORMAT)
            .u8(self.kind.to_u8())
            .u32(self.perm)
            .u32(self.uid)
            .u32(self.gid);
        e.u32(self.nlink).u64(self.size);
        for t in [self.atime, self.mtime, self.ctime, self.btime] {
            put_ts(&mut e, t);
        }
        e.u64(self.rdev)
            .u64(self.generation)
            .u64(self.parent)
            .bytes(&self.name);
        e.u64(self.data_epoch);
        match &self.data {
            Data::Blocks => e.u8(0),
            Data::Inline(b) => e.u8(1).bytes(b),
        };
        e.finish()
    }

    /// Decodes an inode record; `Ok(None)` for a tombstone.
    pub fn decode(buf: &[u8]) -> Result<Option<Inode>, FsError> {
        let mut d = Dec::new(buf, "inode");
        match d.u8()? {
            FORMAT => {}
            TOMBSTONE => return Ok(None),
            _ => return Err(d.corrupt()),
        }
        let kind = FileType::from_u8(d.u8()?).ok_or_else(|| d.corrupt())?;
        let perm = d.u32()?;
        let uid = d.u32()?;
        let gid = d.u32()?;
        let nlink = d.u32()?;
        let size = d.u64()?;
        let atime = get_ts(&mut d)?;
        let mtime = get_ts(&mut d)?;
        let ctime = get_ts(&mut d)?;
        let btime = get_ts(&mut d)?;
        let rdev = d.u64()?;
        let generation = d.u64()?;
        let parent = d.u64()?;
        let name = d.bytes()?.to_vec();
        let data_epoch = d.u64()?;
        let data = match d.u8()? {
            0 => Data::Blocks,
            1 => Data::Inline(d.bytes()?.to_vec()),
            _ => return Err(d.corrupt()),
        };
        Ok(Some(Inode {
            kind,
            perm,
            uid,
            gid,
            nlink,
            size,
            atime,
            mtime,
            ctime,
            btime,
            rdev,
            generation,
            parent,
            name,
            data_epoch,
            data,
        }))
    }

    pub fn tombstone() -> Vec<u8> {
        vec![TOMBSTONE]
    }
}

/// A directory entry value (`D` family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dentry {
    /// A child inode of this workspace's namespace.
    Child { ino: u64, kind: FileType },
    /// Hides an inherited entry of the same name.
    Whiteout,
    /// Grafts the root of workspace `ws` (whose root inode is `root`) at this name.
    Junction { ws: u64, root: u64 },
}

impl Dentry {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::with_capacity(18);
        e.u8(FORMAT);
        match *self {
            Dentry::Child { ino, kind } => e.u8(1).u64(ino).u8(kind.to_u8()),
            Dentry::Whiteout => e.u8(2),
            Dentry::Junction { ws, root } => e.u8(3).u64(ws).u64(root),
        };
        e.finish()
    }

    pub fn decode(buf: &[u8]) -> Result<Dentry, FsError> {
        let mut d = Dec::new(buf, "dentry");
        if d.u8()? != FORMAT {
            return Err(d.corrupt());
        }
        Ok(match d.u8()? {
            1 => {
                let ino = d.u64()?;
                let kind = FileType::from_u8(d.u8()?).ok_or_else(|| d.corrupt())?;
                Dentry::Child { ino, kind }
            }
            2 => Dentry::Whiteout,
            3 => Dentry::Junction {
                ws: d.u64()?,
                root: d.u64()?,
            },
            _ => return Err(d.corrupt()),
        })
    }
}

/// One stored block of a chunk: object generation and valid length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockRef {
    /// Generation in the object key; the object key also names the ino that wrote it.
    pub generation: u64,
    /// Inode whose key space holds the object (the writer's ino; equal for inherited files).
    pub owner: u64,
    /// Bytes of the block that are file data; the rest of the block reads as zeros.
    pub len: u32,
}

/// A chunk manifest (`C` family): the blocks of one 64 MiB chunk; missing blocks are holes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ChunkManifest {
    pub blocks: [Option<BlockRef>; crate::data::BLOCKS_PER_CHUNK],
}

impl ChunkManifest {
    pub fn encode(&self) -> Vec<u8> {
        let n = self.blocks.iter().flatten().count();
        let mut e = Enc::with_capacity(2 + n * 21);
        e.u8(FORMAT).u8(n as u8);
        for (i, b) in self.blocks.iter().enumerate() {
            if let Some(b) = b {
                e.u8(i as u8).u64(b.generation).u64(b.owner).u32(b.len);
            }
        }
        e.finish()
    }

    pub fn decode(buf: &[u8]) -> Result<ChunkManifest, FsError> {
        let mut d = Dec::new(buf, "chunk");
        if d.u8()? != FORMAT {
            return Err(d.corrupt());
        }
        let n = d.u8()?;
        let mut m = ChunkManifest::default();
        for _ in 0..n {
            let i = d.u8()? as usize;
            let generation = d.u64()?;
            let owner = d.u64()?;
            let len = d.u32()?;
            if i >= m.blocks.len() || len as usize > crate::data::BLOCK_SIZE {
                return Err(d.corrupt());
            }
            m.blocks[i] = Some(BlockRef {
                generation,
                owner,
                len,
            });
        }
        Ok(m)
    }
}

/// An xattr value (`X` family); `None` is a whiteout hiding an inherited value.
pub(crate) fn encode_xattr(value: Option<&[u8]>) -> Vec<u8> {
    let mut e = Enc::with_capacity(6 + value.map_or(0, <[u8]>::len));
    match value {
        Some(v) => e.u8(FORMAT).bytes(v),
        None => e.u8(TOMBSTONE),
    };
    e.finish()
}

pub(crate) fn decode_xattr(buf: &[u8]) -> Result<Option<Vec<u8>>, FsError> {
    let mut d = Dec::new(buf, "xattr");
    match d.u8()? {
        FORMAT => Ok(Some(d.bytes()?.to_vec())),
        TOMBSTONE => Ok(None),
        _ => Err(d.corrupt()),
    }
}

/// A read point: a layer as of a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadPoint {
    /// Layer id.
    pub layer: u64,
    /// Records with versions above this are invisible.
    pub version: u64,
}

/// A layer record (`L` family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LayerRecord {
    pub parent: Option<ReadPoint>,
    pub created: u64,
}

impl LayerRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::with_capacity(26);
        e.u8(FORMAT);
        match self.parent {
            Some(p) => e.u8(1).u64(p.layer).u64(p.version),
            None => e.u8(0),
        };
        e.u64(self.created);
        e.finish()
    }

    pub fn decode(buf: &[u8]) -> Result<LayerRecord, FsError> {
        let mut d = Dec::new(buf, "layer");
        if d.u8()? != FORMAT {
            return Err(d.corrupt());
        }
        let parent = match d.u8()? {
            0 => None,
            1 => Some(ReadPoint {
                layer: d.u64()?,
                version: d.u64()?,
            }),
            _ => return Err(d.corrupt()),
        };
        Ok(LayerRecord {
            parent,
            created: d.u64()?,
        })
    }
}

/// A workspace record (`W` family).
/// Where a workspace is grafted into its parent workspace: the junction entry `name` of
/// directory `dir` in workspace `ws`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub ws: u64,
    pub dir: u64,
    pub name: Vec<u8>,
}

/// What a workspace was cloned from: the source workspace and the read point of the clone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Base {
    pub ws: u64,
    pub at: ReadPoint,
}

/// A workspace (`W` family): its head layer, root directory inode, and (except for the
/// root workspace) where it is mounted and what it was cloned from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkspaceRecord {
    pub head: u64,
    pub root: u64,
    pub created: u64,
    pub mount: Option<Mount>,
    pub base: Option<Base>,
}

impl WorkspaceRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::with_capacity(64);
        e.u8(FORMAT).u64(self.head).u64(self.root).u64(self.created);
        match &self.mount {
            Some(m) => e.u8(1).u64(m.ws).u64(m.dir).bytes(&m.name),
            None => e.u8(0),
        };
        match &self.base {
            Some(b) => e.u8(1).u64(b.ws).u64(b.at.layer).u64(b.at.version),
            None => e.u8(0),
        };
        e.finish()
    }

    pub fn decode(buf: &[u8]) -> Result<WorkspaceRecord, FsError> {
        let mut d = Dec::new(buf, "workspace");
        if d.u8()? != FORMAT {
            return Err(d.corrupt());
        }
        let head = d.u64()?;
        let root = d.u64()?;
        let created = d.u64()?;
        let mount = match d.u8()? {
            0 => None,
            1 => Some(Mount {
                ws: d.u64()?,
                dir: d.u64()?,
                name: d.bytes()?.to_vec(),
            }),
            _ => return Err(d.corrupt()),
        };
        let base = match d.u8()? {
            0 => None,
            1 => Some(Base {
                ws: d.u64()?,
                at: ReadPoint {
                    layer: d.u64()?,
                    version: d.u64()?,
                },
            }),
            _ => return Err(d.corrupt()),
        };
        Ok(WorkspaceRecord {
            head,
            root,
            created,
            mount,
            base,
        })
    }
}

/// A snapshot (`N` family): a read-only pin of directory `root` of workspace `ws`, read
/// through `at` (the workspace's head layer as of the snapshot's version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SnapshotRecord {
    pub name: String,
    pub ws: u64,
    pub at: ReadPoint,
    pub root: u64,
    /// Volume path of `root` when the snapshot was taken (for listings).
    pub path: String,
    pub created: Timestamp,
}

impl SnapshotRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::with_capacity(64 + self.name.len() + self.path.len());
        e.u8(FORMAT)
            .bytes(self.name.as_bytes())
            .u64(self.ws)
            .u64(self.at.layer)
            .u64(self.at.version)
            .u64(self.root)
            .bytes(self.path.as_bytes());
        put_ts(&mut e, self.created);
        e.finish()
    }

    pub fn decode(buf: &[u8]) -> Result<SnapshotRecord, FsError> {
        let mut d = Dec::new(buf, "snapshot");
        if d.u8()? != FORMAT {
            return Err(d.corrupt());
        }
        let name = String::from_utf8(d.bytes()?.to_vec()).map_err(|_| d.corrupt())?;
        let ws = d.u64()?;
        let at = ReadPoint {
            layer: d.u64()?,
            version: d.u64()?,
        };
        let root = d.u64()?;
        let path = String::from_utf8(d.bytes()?.to_vec()).map_err(|_| d.corrupt())?;
        let created = get_ts(&mut d)?;
        Ok(SnapshotRecord {
            name,
            ws,
            at,
            root,
            path,
            created,
        })
    }
}

pub(crate) fn encode_change(inos: &[u64]) -> Vec<u8> {
    let mut e = Enc::with_capacity(5 + inos.len() * 8);
    e.u8(FORMAT).u32(inos.len() as u32);
    for &i in inos {
        e.u64(i);
    }
    e.finish()
}

pub(crate) fn decode_change(buf: &[u8]) -> Result<Vec<u64>, FsError> {
    let mut d = Dec::new(buf, "change");
    if d.u8()? != FORMAT {
        return Err(d.corrupt());
    }
    let n = d.u32()? as usize;
    if n > buf.len() / 8 {
        return Err(d.corrupt());
    }
    (0..n).map(|_| d.u64()).collect()
}

/// Encodes a u64 counter value (`S` family).
pub(crate) fn encode_counter(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

pub(crate) fn decode_counter(buf: &[u8]) -> Result<u64, FsError> {
    let mut d = Dec::new(buf, "counter");
    let v = d.u64()?;
    if !d.is_empty() {
        return Err(d.corrupt());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Inode {
        Inode {
            kind: FileType::File,
            perm: 0o644,
            uid: 1,
            gid: 2,
            nlink: 1,
            size: 5,
            atime: Timestamp { secs: -5, nanos: 7 },
            mtime: Timestamp {
                secs: 10,
                nanos: 999_999_999,
            },
            ctime: Timestamp::default(),
            btime: Timestamp::default(),
            rdev: 0,
            generation: 9,
            parent: 1,
            name: b"x".to_vec(),
            data_epoch: 3,
            data: Data::Inline(b"hello".to_vec()),
        }
    }

    #[test]
    fn round_trips() {
        let i = sample();
        assert_eq!(Inode::decode(&i.encode()).unwrap(), Some(i));
        assert_eq!(Inode::decode(&Inode::tombstone()).unwrap(), None);
        for d in [
            Dentry::Whiteout,
            Dentry::Child {
                ino: 5,
                kind: FileType::Dir,
            },
            Dentry::Junction { ws: 2, root: 9 },
        ] {
            assert_eq!(Dentry::decode(&d.encode()).unwrap(), d);
        }
        let mut m = ChunkManifest::default();
        m.blocks[3] = Some(BlockRef {
            generation: 4,
            owner: 8,
            len: 100,
        });
        assert_eq!(ChunkManifest::decode(&m.encode()).unwrap(), m);
        let l = LayerRecord {
            parent: Some(ReadPoint {
                layer: 1,
                version: 2,
            }),
            created: 3,
        };
        assert_eq!(LayerRecord::decode(&l.encode()).unwrap(), l);
        assert_eq!(decode_change(&encode_change(&[1, 2])).unwrap(), vec![1, 2]);
        let w = WorkspaceRecord {
            head: 4,
            root: 9,
            created: 7,
            mount: Some(Mount {
                ws: 0,
                dir: 1,
                name: b"fork".to_vec(),
            }),
            base: Some(Base {
                ws: 0,
                at: ReadPoint {
                    layer: 1,
                    version: 6,
                },
            }),
        };
        assert_eq!(WorkspaceRecord::decode(&w.encode()).unwrap(), w);
        let n = SnapshotRecord {
            name: "base@v1".into(),
            ws: 3,
            at: ReadPoint {
                layer: 4,
                version: 10,
            },
            root: 9,
            path: "/base".into(),
            created: Timestamp { secs: 5, nanos: 6 },
        };
        assert_eq!(SnapshotRecord::decode(&n.encode()).unwrap(), n);
        for cut in 0..n.encode().len() {
            assert!(SnapshotRecord::decode(&n.encode()[..cut]).is_err());
        }
        assert_eq!(
            decode_xattr(&encode_xattr(Some(b"v"))).unwrap(),
            Some(b"v".to_vec())
        );
    }

    #[test]
    fn truncated_records_are_corrupt_not_panics() {
        let enc = sample().encode();
        for n in 0..enc.len() {
            assert!(Inode::decode(&enc[..n]).is_err());
        }
        assert!(Dentry::decode(&[1, 9]).is_err());
        assert!(ChunkManifest::decode(&[1, 1, 200, 0]).is_err());
    }
}
