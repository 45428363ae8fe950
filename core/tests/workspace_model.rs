//! Reference-model property test of the workspace operations: random sequences of file
//! operations inside workspaces interleaved with clone, snapshot, snapshot deletion,
//! rollback, diff, discard, promote and gc, run against `Fs` (in-memory stores) and a plain
//! model in which every workspace and snapshot is an independent copy of a tree.
//!
//! GC runs between every two steps. Every operation's success or error kind must match the
//! model's, and diff must equal the model's diff; every 10 steps and at the end every
//! workspace and snapshot must read exactly what the model says (names, types, modes,
//! contents, symlink targets, xattrs) and fsck must be clean.
//!
//! Every other workspace operation goes through its `/.nokv/` control file instead of the
//! API (quoted arguments written, output read back and parsed), so the two must agree.
//!
//! The seed is printed; `NOKV_WS_MODEL_SEED` replays one, `NOKV_WS_MODEL_CASES` sets the
//! number of cases.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use nokv_core::control::{quote, split};
use nokv_core::object::MemObjectStore;
use nokv_core::store::MemStore;
use nokv_core::workspace::{Change, GcOptions};
use nokv_core::{
    Caller, ErrorKind, FileId, FileType, Fs, FsOptions, OpenFlags, RenameFlags, SetAttr, XattrMode,
    INLINE_MAX,
};
use proptest::prelude::*;

mod common;

const NAMES: [&str; 3] = ["a", "b", "c"];
const ROOT: Caller = Caller::ROOT;
const WRITE: OpenFlags = OpenFlags {
    read: false,
    write: true,
    truncate: false,
};

#[derive(Debug, Clone)]
enum Op {
    Write(usize, usize, usize, u64, u32, u8),
    Truncate(usize, usize, u64),
    Mkdir(usize, usize, usize),
    Symlink(usize, usize, usize, u8),
    Remove(usize, usize),
    Rename(usize, usize, usize, usize),
    Chmod(usize, usize, u32),
    SetXattr(usize, usize, u8),
    RemoveXattr(usize, usize),
    Clone(usize),
    Snapshot(usize, usize, bool),
    DeleteSnapshot(usize),
    Rollback(usize, usize),
    Diff(usize, usize),
    Discard(usize),
    Promote(usize),
    Gc,
}

fn op() -> impl Strategy<Value = Op> {
    let v = 0usize..8;
    let s = 0usize..64;
    let n = 0..NAMES.len();
    prop_oneof![
        8 => (v.clone(), s.clone(), n.clone(), prop_oneof![19 => 0u64..(2 * INLINE_MAX), 1 => 0u64..6_000_000], prop_oneof![19 => 1u32..12_000, 1 => 1u32..4_500_000], any::<u8>())
            .prop_map(|(a, b, c, d, e, f)| Op::Write(a, b, c, d, e, f)),
        2 => (v.clone(), s.clone(), prop_oneof![0u64..(INLINE_MAX + INLINE_MAX / 4), 0u64..5_000_000]).prop_map(|(a, b, c)| Op::Truncate(a, b, c)),
        3 => (v.clone(), s.clone(), n.clone()).prop_map(|(a, b, c)| Op::Mkdir(a, b, c)),
        1 => (v.clone(), s.clone(), n.clone(), any::<u8>()).prop_map(|(a, b, c, d)| Op::Symlink(a, b, c, d)),
        3 => (v.clone(), s.clone()).prop_map(|(a, b)| Op::Remove(a, b)),
        2 => (v.clone(), s.clone(), s.clone(), n.clone()).prop_map(|(a, b, c, d)| Op::Rename(a, b, c, d)),
        1 => (v.clone(), s.clone(), 0u32..0o1000).prop_map(|(a, b, c)| Op::Chmod(a, b, c)),
        1 => (v.clone(), s.clone(), any::<u8>()).prop_map(|(a, b, c)| Op::SetXattr(a, b, c)),
        1 => (v.clone(), s.clone()).prop_map(|(a, b)| Op::RemoveXattr(a, b)),
        3 => (0usize..16).prop_map(Op::Clone),
        2 => (v.clone(), s.clone(), prop::bool::weighted(0.2)).prop_map(|(a, b, c)| Op::Snapshot(a, b, c)),
        1 => (0usize..8).prop_map(Op::DeleteSnapshot),
        2 => (v.clone(), 0usize..8).prop_map(|(a, b)| Op::Rollback(a, b)),
        2 => (0usize..16, 0usize..16).prop_map(|(a, b)| Op::Diff(a, b)),
        1 => v.clone().prop_map(Op::Discard),
        2 => v.prop_map(Op::Promote),
        1 => Just(Op::Gc),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir {
        perm: u32,
        xattrs: BTreeMap<String, u8>,
    },
    File {
        data: Vec<u8>,
        perm: u32,
        xattrs: BTreeMap<String, u8>,
        token: u64,
    },
    Symlink(Vec<u8>),
}

impl Node {
    /// What diff must report: everything except the content token.
    fn strict(&self) -> Strict {
        match self {
            Node::Dir { perm, xattrs } => (FileType::Dir, *perm, Vec::new(), xattrs.clone()),
            Node::File {
                data, perm, xattrs, ..
            } => (FileType::File, *perm, data.clone(), xattrs.clone()),
            Node::Symlink(t) => (FileType::Symlink, 0o777, t.clone(), BTreeMap::new()),
        }
    }
}

/// What a node must look like, as compared by reads and diff.
type Strict = (FileType, u32, Vec<u8>, BTreeMap<String, u8>);

/// A tree: relative path (`/a/b`) -> node; the root itself is not listed.
type Tree = BTreeMap<String, Node>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BaseRef {
    ws: u64,
    epoch: u64,
    mods: u64,
}

#[derive(Debug, Clone)]
struct View {
    id: u64,
    path: String,
    tree: Tree,
    base: Option<BaseRef>,
    /// Bumped when the view's lineage changes (rollback, promote into it).
    epoch: u64,
    /// Bumped by every successful change of its content.
    mods: u64,
}

#[derive(Debug, Clone)]
struct Snap {
    name: String,
    ws: u64,
    tree: Tree,
    /// Taken of the view's root directory (not a subdirectory).
    of_root: bool,
    /// A sub-directory snapshot's root: that directory as it was (its mode and xattrs are
    /// the snapshot root's, which diff compares). `None` for a view root (not modelled).
    root: Option<Node>,
    epoch: u64,
    mods: u64,
    /// The base of the view when the snapshot was taken.
    base: Option<BaseRef>,
}

struct Harness {
    fs: Fs,
    rt: tokio::runtime::Runtime,
    views: Vec<View>,
    snaps: Vec<Snap>,
    next_ws: u64,
    next_fork: u64,
    next_label: u64,
    next_token: u64,
    /// Workspace operations alternate between the API and the `/.nokv/` control files.
    turn: u64,
    _tmp: tempfile::TempDir,
}

fn children<'a>(tree: &'a Tree, dir: &str) -> impl Iterator<Item = (&'a String, &'a Node)> {
    let prefix = if dir == "/" {
        String::from("/")
    } else {
        format!("{dir}/")
    };
    tree.iter()
        .filter(move |(p, _)| p.starts_with(&prefix) && !p[prefix.len()..].contains('/'))
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

fn parent_of(p: &str) -> (&str, &str) {
    let (d, n) = p.rsplit_once('/').unwrap();
    (if d.is_empty() { "/" } else { d }, n)
}

type R = Result<(), TestCaseError>;

/// Runs `op` through its control file, as a shell would: the arguments quoted on one line,
/// the output read back from the same file.
async fn ctl(fs: &Fs, op: &str, args: &[&str]) -> nokv_core::Result<String> {
    let dir = fs.lookup(FileId::ROOT, b".nokv", &ROOT).await?.id;
    let file = fs.lookup(dir, op.as_bytes(), &ROOT).await?.id;
    let mut line: Vec<String> = args.iter().map(|a| quote(a).into_owned()).collect();
    line.push("\n".into());
    fs.write(file, 0, line.join(" ").as_bytes()).await?;
    let out = fs.read(file, 0, u32::MAX / 2).await?;
    Ok(String::from_utf8(out.to_vec()).expect("control output is UTF-8"))
}

/// A diff as the `diff` control file prints it: `(path, change)` per line.
fn parse_diff(out: &str) -> Vec<(String, Change)> {
    out.lines()
        .map(|l| {
            let args = split(l.as_bytes()).expect("diff output splits");
            let change = match args[0].as_str() {
                "A" => Change::Added,
                "D" => Change::Removed,
                "M" => Change::Modified,
                other => panic!("diff line {l:?}: unknown change {other}"),
            };
            (args[1].clone(), change)
        })
        .collect()
}

fn kind_of(r: &nokv_core::Result<impl Sized>) -> Option<ErrorKind> {
    r.as_ref().err().map(|e| e.kind())
}

impl Harness {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let fs = Fs::new(
            Arc::new(MemStore::new()),
            Arc::new(MemObjectStore::new()),
            FsOptions {
                gc_grace: std::time::Duration::ZERO,
                ..FsOptions::new("wsmodel", tmp.path().join("staging"))
            },
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for d in [&b"base"[..], b"forks"] {
                fs.mkdir(fs.root(), d, 0o755, &ROOT).await.unwrap();
            }
        });
        Harness {
            fs,
            rt,
            views: vec![View {
                id: 0,
                path: "/base".into(),
                tree: Tree::new(),
                base: None,
                epoch: 0,
                mods: 0,
            }],
            snaps: Vec::new(),
            next_ws: 1,
            next_fork: 1,
            next_label: 1,
            next_token: 1,
            turn: 0,
            _tmp: tmp,
        }
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    fn abs(&self, v: usize, rel: &str) -> String {
        if rel == "/" {
            self.views[v].path.clone()
        } else {
            format!("{}{rel}", self.views[v].path)
        }
    }

    fn id(&self, path: &str) -> FileId {
        self.fs.resolve(path).unwrap()
    }

    /// Directories of view `v` (including the root "/").
    fn dirs(&self, v: usize) -> Vec<String> {
        let mut d = vec!["/".to_string()];
        d.extend(
            self.views[v]
                .tree
                .iter()
                .filter(|(_, n)| matches!(n, Node::Dir { .. }))
                .map(|(p, _)| p.clone()),
        );
        d
    }

    fn nodes(&self, v: usize) -> Vec<String> {
        self.views[v].tree.keys().cloned().collect()
    }

    fn apply(&mut self, op: &Op) -> R {
        let nv = self.views.len();
        let fs = self.fs.clone();
        match op.clone() {
            Op::Write(v, d, n, off, len, byte) => {
                let v = v % nv;
                let dirs = self.dirs(v);
                let path = join(&dirs[d % dirs.len()], NAMES[n]);
                let exists = self.views[v].tree.get(&path).cloned();
                if matches!(exists, Some(Node::Dir { .. }) | Some(Node::Symlink(_))) {
                    return Ok(());
                }
                let abs = self.abs(v, &path);
                let data = vec![byte; len as usize];
                self.rt.block_on(async {
                    let id = match exists {
                        Some(_) => fs.resolve(&abs).unwrap(),
                        None => {
                            let (dir, name) = parent_of(&abs);
                            fs.create(
                                fs.resolve(dir).unwrap(),
                                name.as_bytes(),
                                0o644,
                                &ROOT,
                                true,
                            )
                            .await
                            .unwrap()
                            .id
                        }
                    };
                    fs.open(id, WRITE, &ROOT).await.unwrap();
                    fs.write(id, off, &data).await.unwrap();
                    fs.release(id).await.unwrap();
                });
                let token = self.token();
                let view = &mut self.views[v];
                let node = view.tree.entry(path).or_insert(Node::File {
                    data: Vec::new(),
                    perm: 0o644,
                    xattrs: BTreeMap::new(),
                    token,
                });
                if let Node::File {
                    data: d, token: t, ..
                } = node
                {
                    let end = off as usize + data.len();
                    if d.len() < end {
                        d.resize(end, 0);
                    }
                    d[off as usize..end].copy_from_slice(&data);
                    *t = token;
                }
                view.mods += 1;
            }
            Op::Truncate(v, s, size) => {
                let v = v % nv;
                let nodes = self.nodes(v);
                if nodes.is_empty() {
                    return Ok(());
                }
                let path = nodes[s % nodes.len()].clone();
                if !matches!(self.views[v].tree[&path], Node::File { .. }) {
                    return Ok(());
                }
                let id = self.id(&self.abs(v, &path));
                self.rt
                    .block_on(fs.setattr(
                        id,
                        &SetAttr {
                            size: Some(size),
                            ..Default::default()
                        },
                        &ROOT,
                    ))
                    .unwrap();
                let token = self.token();
                let view = &mut self.views[v];
                if let Some(Node::File { data, token: t, .. }) = view.tree.get_mut(&path) {
                    data.resize(size as usize, 0);
                    *t = token;
                }
                view.mods += 1;
            }
            Op::Mkdir(v, d, n) | Op::Symlink(v, d, n, _) => {
                let v = v % nv;
                let dirs = self.dirs(v);
                let path = join(&dirs[d % dirs.len()], NAMES[n]);
                if self.views[v].tree.contains_key(&path) {
                    return Ok(());
                }
                let abs = self.abs(v, &path);
                let (dir, name) = parent_of(&abs);
                let dir = self.id(dir);
                let node = match op {
                    Op::Symlink(.., t) => {
                        let target = vec![b'a' + t % 26; 1 + (*t as usize % 40)];
                        self.rt
                            .block_on(fs.symlink(dir, name.as_bytes(), &target, &ROOT))
                            .unwrap();
                        Node::Symlink(target)
                    }
                    _ => {
                        self.rt
                            .block_on(fs.mkdir(dir, name.as_bytes(), 0o755, &ROOT))
                            .unwrap();
                        Node::Dir {
                            perm: 0o755,
                            xattrs: BTreeMap::new(),
                        }
                    }
                };
                let view = &mut self.views[v];
                view.tree.insert(path, node);
                view.mods += 1;
            }
            Op::Remove(v, s) => {
                let v = v % nv;
                let nodes = self.nodes(v);
                if nodes.is_empty() {
                    return Ok(());
                }
                let path = nodes[s % nodes.len()].clone();
                let is_dir = matches!(self.views[v].tree[&path], Node::Dir { .. });
                if is_dir && children(&self.views[v].tree, &path).next().is_some() {
                    return Ok(());
                }
                let abs = self.abs(v, &path);
                let (dir, name) = parent_of(&abs);
                let dir = self.id(dir);
                if is_dir {
                    self.rt
                        .block_on(fs.rmdir(dir, name.as_bytes(), &ROOT))
                        .unwrap();
                } else {
                    self.rt
                        .block_on(fs.unlink(dir, name.as_bytes(), &ROOT))
                        .unwrap();
                }
                let view = &mut self.views[v];
                view.tree.remove(&path);
                view.mods += 1;
            }
            Op::Rename(v, s, d, n) => {
                let v = v % nv;
                let nodes = self.nodes(v);
                if nodes.is_empty() {
                    return Ok(());
                }
                let src = nodes[s % nodes.len()].clone();
                let dirs = self.dirs(v);
                let dst_dir = dirs[d % dirs.len()].clone();
                let dst = join(&dst_dir, NAMES[n]);
                if self.views[v].tree.contains_key(&dst)
                    || dst_dir == src
                    || dst_dir.starts_with(&format!("{src}/"))
                {
                    return Ok(());
                }
                let (sa, da) = (self.abs(v, &src), self.abs(v, &dst));
                let (sd, sn) = parent_of(&sa);
                let (dd, dn) = parent_of(&da);
                let (sd, dd) = (self.id(sd), self.id(dd));
                self.rt
                    .block_on(fs.rename(
                        sd,
                        sn.as_bytes(),
                        dd,
                        dn.as_bytes(),
                        RenameFlags::default(),
                        &ROOT,
                    ))
                    .unwrap();
                let view = &mut self.views[v];
                let moved: Vec<(String, Node)> = view
                    .tree
                    .iter()
                    .filter(|(p, _)| **p == src || p.starts_with(&format!("{src}/")))
                    .map(|(p, n)| (p.clone(), n.clone()))
                    .collect();
                for (p, node) in moved {
                    view.tree.remove(&p);
                    view.tree.insert(format!("{dst}{}", &p[src.len()..]), node);
                }
                view.mods += 1;
            }
            Op::Chmod(v, s, mode) => {
                let v = v % nv;
                let nodes = self.nodes(v);
                if nodes.is_empty() {
                    return Ok(());
                }
                let path = nodes[s % nodes.len()].clone();
                if matches!(self.views[v].tree[&path], Node::Symlink(_)) {
                    return Ok(());
                }
                let id = self.id(&self.abs(v, &path));
                self.rt
                    .block_on(fs.setattr(
                        id,
                        &SetAttr {
                            mode: Some(mode),
                            ..Default::default()
                        },
                        &ROOT,
                    ))
                    .unwrap();
                let view = &mut self.views[v];
                match view.tree.get_mut(&path) {
                    Some(Node::Dir { perm, .. }) | Some(Node::File { perm, .. }) => *perm = mode,
                    _ => {}
                }
                view.mods += 1;
            }
            Op::SetXattr(v, s, _) | Op::RemoveXattr(v, s) => {
                let v = v % nv;
                let nodes = self.nodes(v);
                if nodes.is_empty() {
                    return Ok(());
                }
                let path = nodes[s % nodes.len()].clone();
                let set = matches!(op, Op::SetXattr(..));
                let present = match &self.views[v].tree[&path] {
                    Node::Symlink(_) => return Ok(()),
                    Node::Dir { xattrs, .. } | Node::File { xattrs, .. } => {
                        xattrs.contains_key("user.m")
                    }
                };
                if !set && !present {
                    return Ok(());
                }
                let id = self.id(&self.abs(v, &path));
                let b = if let Op::SetXattr(_, _, b) = op {
                    *b
                } else {
                    0
                };
                if set {
                    self.rt
                        .block_on(fs.setxattr(id, b"user.m", &[b], XattrMode::Any, &ROOT))
                        .unwrap();
                } else {
                    self.rt
                        .block_on(fs.removexattr(id, b"user.m", &ROOT))
                        .unwrap();
                }
                let view = &mut self.views[v];
                match view.tree.get_mut(&path) {
                    Some(Node::Dir { xattrs, .. }) | Some(Node::File { xattrs, .. }) => {
                        if set {
                            xattrs.insert("user.m".into(), b);
                        } else {
                            xattrs.remove("user.m");
                        }
                    }
                    _ => {}
                }
                view.mods += 1;
            }
            Op::Clone(src) => {
                let total = nv + self.snaps.iter().filter(|s| s.of_root).count();
                let src = src % total;
                let dst = format!("/forks/f{}", self.next_fork);
                let (src_path, tree, base) = if src < nv {
                    let v = &self.views[src];
                    (
                        v.path.clone(),
                        v.tree.clone(),
                        BaseRef {
                            ws: v.id,
                            epoch: v.epoch,
                            mods: v.mods,
                        },
                    )
                } else {
                    let s = self
                        .snaps
                        .iter()
                        .filter(|s| s.of_root)
                        .nth(src - nv)
                        .unwrap();
                    (
                        format!("/.nokv/snapshots/{}", s.name),
                        s.tree.clone(),
                        BaseRef {
                            ws: s.ws,
                            epoch: s.epoch,
                            mods: s.mods,
                        },
                    )
                };
                let got = match self.via_control() {
                    true => self
                        .rt
                        .block_on(ctl(&fs, "clone", &[&src_path, &dst]))
                        .map(drop),
                    false => self.rt.block_on(fs.clone_tree(&src_path, &dst)).map(drop),
                };
                prop_assert!(got.is_ok(), "clone {src_path} {dst}: {got:?}");
                self.next_fork += 1;
                self.views.push(View {
                    id: self.next_ws,
                    path: dst,
                    tree,
                    base: Some(base),
                    epoch: 0,
                    mods: 0,
                });
                self.next_ws += 1;
            }
            Op::Snapshot(v, s, sub) => {
                let v = v % nv;
                let dirs = self.dirs(v);
                let rel = if sub {
                    dirs[s % dirs.len()].clone()
                } else {
                    "/".to_string()
                };
                let abs = self.abs(v, &rel);
                let label = format!("s{}", self.next_label);
                self.next_label += 1;
                let got = match self.via_control() {
                    true => self
                        .rt
                        .block_on(ctl(&fs, "snapshot", &[&abs, &label]))
                        .map(|out| out.trim_end().to_string()),
                    false => self
                        .rt
                        .block_on(fs.snapshot(&abs, Some(&label)))
                        .map(|i| i.name),
                };
                let base = abs.rsplit('/').next().unwrap().to_string();
                let name = format!("{base}@{label}");
                let got = got.map_err(|e| TestCaseError::fail(format!("snapshot {abs}: {e}")))?;
                prop_assert_eq!(&got, &name);
                self.next_ws += 1;
                let view = &self.views[v];
                let tree: Tree = if rel == "/" {
                    view.tree.clone()
                } else {
                    view.tree
                        .iter()
                        .filter(|(p, _)| p.starts_with(&format!("{rel}/")))
                        .map(|(p, n)| (p[rel.len()..].to_string(), n.clone()))
                        .collect()
                };
                self.snaps.push(Snap {
                    name,
                    ws: view.id,
                    tree,
                    root: (rel != "/").then(|| view.tree.get(&rel).cloned()).flatten(),
                    of_root: rel == "/",
                    epoch: view.epoch,
                    mods: view.mods,
                    base: view.base,
                });
            }
            Op::DeleteSnapshot(s) => {
                if self.snaps.is_empty() {
                    return Ok(());
                }
                let snap = self.snaps.remove(s % self.snaps.len());
                let got = self.rt.block_on(fs.delete_snapshot(&snap.name));
                prop_assert!(got.is_ok(), "delete snapshot {}: {got:?}", snap.name);
            }
            Op::Rollback(v, s) => {
                if self.snaps.is_empty() {
                    return Ok(());
                }
                let v = v % nv;
                let snap = self.snaps[s % self.snaps.len()].clone();
                let path = self.views[v].path.clone();
                let allowed =
                    v != 0 && snap.of_root && self.lineage(self.views[v].id).contains(&snap.ws);
                let want = (!allowed).then_some(ErrorKind::InvalidArgument);
                let got = match self.via_control() {
                    true => self
                        .rt
                        .block_on(ctl(&fs, "rollback", &[&path, &snap.name]))
                        .map(drop),
                    false => self.rt.block_on(fs.rollback(&path, &snap.name)),
                };
                prop_assert_eq!(
                    kind_of(&got),
                    want,
                    "rollback {} {}: {:?}",
                    path,
                    snap.name,
                    got
                );
                if want.is_none() {
                    let view = &mut self.views[v];
                    view.tree = snap.tree.clone();
                    view.epoch += 1;
                    // Where the view now reads its base: the snapshot's own base when it
                    // is one of the view's snapshots, the snapshot itself when it is one of
                    // the base's; from further up, the base's head is not in its lineage.
                    view.base = if snap.ws == view.id {
                        snap.base
                    } else {
                        view.base.map(|b| {
                            if snap.ws == b.ws {
                                BaseRef {
                                    ws: b.ws,
                                    epoch: snap.epoch,
                                    mods: snap.mods,
                                }
                            } else {
                                BaseRef {
                                    epoch: u64::MAX,
                                    ..b
                                }
                            }
                        })
                    };
                }
            }
            Op::Diff(a, b) => {
                let (pa, ta, root_a) = self.any_tree(a);
                let (pb, tb, root_b) = self.any_tree(b);
                let fail =
                    |e: nokv_core::FsError| TestCaseError::fail(format!("diff {pa} {pb}: {e}"));
                let got: Vec<(String, Change)> = match self.via_control() {
                    true => parse_diff(
                        &self
                            .rt
                            .block_on(ctl(&fs, "diff", &[&pa, &pb]))
                            .map_err(fail)?,
                    ),
                    false => self
                        .rt
                        .block_on(fs.diff(&pa, &pb))
                        .map_err(fail)?
                        .map(|e| (e.path, e.change))
                        .collect(),
                };
                let reported: BTreeMap<String, Change> = got.iter().cloned().collect();
                prop_assert_eq!(reported.len(), got.len(), "a path is reported twice");
                let all: BTreeSet<&String> = ta.keys().chain(tb.keys()).collect();
                for p in all {
                    let (x, y) = (ta.get(p), tb.get(p));
                    let want = match (x, y) {
                        (Some(_), None) => Some(Change::Removed),
                        (None, Some(_)) => Some(Change::Added),
                        (Some(x), Some(y)) if x.strict() != y.strict() => Some(Change::Modified),
                        (Some(Node::File { token: s, .. }), Some(Node::File { token: t, .. }))
                            if s != t =>
                        {
                            // Rewritten with the same bytes: may be reported as modified.
                            if let Some(c) = reported.get(p) {
                                prop_assert_eq!(*c, Change::Modified, "diff {} {} {}", pa, pb, p);
                            }
                            continue;
                        }
                        _ => None,
                    };
                    prop_assert_eq!(
                        reported.get(p).copied(),
                        want,
                        "diff {} {} at {}: {:?}",
                        pa,
                        pb,
                        p,
                        got
                    );
                }
                // The roots: a sub-directory snapshot's root is that directory, whose mode and
                // xattrs may differ; a view's root is not modelled, so anything goes there.
                let root_differs = match (&root_a, &root_b) {
                    (Some(x), Some(y)) => Some(x.strict() != y.strict()),
                    _ => None,
                };
                match root_differs {
                    Some(true) => prop_assert_eq!(
                        reported.get("/").copied(),
                        Some(Change::Modified),
                        "diff {} {}: the roots differ",
                        pa,
                        pb
                    ),
                    Some(false) => prop_assert!(
                        !reported.contains_key("/"),
                        "diff {pa} {pb} reports / but the roots are the same"
                    ),
                    None => {}
                }
                for p in reported.keys() {
                    prop_assert!(
                        p == "/" && root_differs != Some(false)
                            || ta.contains_key(p)
                            || tb.contains_key(p),
                        "diff {pa} {pb} reports unknown {p}"
                    );
                }
            }
            Op::Discard(v) => {
                let v = v % nv;
                let path = self.views[v].path.clone();
                let got = match self.via_control() {
                    true => self.rt.block_on(ctl(&fs, "discard", &[&path])).map(drop),
                    false => self.rt.block_on(fs.discard(&path)),
                };
                let want = (v == 0).then_some(ErrorKind::InvalidArgument);
                prop_assert_eq!(kind_of(&got), want, "discard {}: {:?}", path, got);
                if v != 0 {
                    self.views.remove(v);
                }
            }
            Op::Promote(v) => {
                let v = v % nv;
                let path = self.views[v].path.clone();
                let want = match self.views[v].base {
                    None => Some(ErrorKind::InvalidArgument),
                    Some(b) => match self.views.iter().position(|x| x.id == b.ws) {
                        None => Some(ErrorKind::InvalidArgument),
                        Some(bi) if self.views[bi].epoch != b.epoch => {
                            Some(ErrorKind::InvalidArgument)
                        }
                        Some(bi) if self.views[bi].mods != b.mods => Some(ErrorKind::Busy),
                        Some(_) => None,
                    },
                };
                let got = match self.via_control() {
                    true => self.rt.block_on(ctl(&fs, "promote", &[&path])).map(drop),
                    false => self.rt.block_on(fs.promote(&path)),
                };
                prop_assert_eq!(kind_of(&got), want, "promote {}: {:?}", path, got);
                if want.is_none() {
                    let f = self.views.remove(v);
                    let b = f.base.unwrap();
                    let bv = self.views.iter_mut().find(|x| x.id == b.ws).unwrap();
                    bv.tree = f.tree;
                    bv.epoch += 1;
                }
            }
            Op::Gc => {
                let got = match self.via_control() {
                    true => self.rt.block_on(ctl(&fs, "gc", &[])).map(drop),
                    false => self
                        .rt
                        .block_on(fs.gc(&GcOptions {
                            grace: std::time::Duration::ZERO,
                            dry_run: false,
                        }))
                        .map(drop),
                };
                prop_assert!(got.is_ok(), "gc: {got:?}");
            }
        }
        Ok(())
    }

    /// Whether the next workspace operation goes through a control file (every other one).
    fn via_control(&mut self) -> bool {
        self.turn += 1;
        self.turn.is_multiple_of(2)
    }

    /// `ws` and the workspaces it was cloned from, as the core follows them (a missing
    /// workspace ends the walk but is itself included).
    fn lineage(&self, ws: u64) -> Vec<u64> {
        let mut out = vec![ws];
        let mut cur = ws;
        while let Some(v) = self.views.iter().find(|v| v.id == cur) {
            match v.base {
                Some(b) => {
                    out.push(b.ws);
                    cur = b.ws;
                }
                None => break,
            }
        }
        out
    }

    /// View or snapshot number `i` (views first): its path and model tree.
    /// The path, tree and (when modelled) root directory of view or snapshot `i`.
    fn any_tree(&self, i: usize) -> (String, Tree, Option<Node>) {
        let i = i % (self.views.len() + self.snaps.len());
        if i < self.views.len() {
            (self.views[i].path.clone(), self.views[i].tree.clone(), None)
        } else {
            let s = &self.snaps[i - self.views.len()];
            (
                format!("/.nokv/snapshots/{}", s.name),
                s.tree.clone(),
                s.root.clone(),
            )
        }
    }

    /// Every view and snapshot reads what the model says; fsck is clean.
    fn check(&self) -> R {
        for v in &self.views {
            self.check_tree(&v.path, &v.tree)?;
        }
        for s in &self.snaps {
            self.check_tree(&format!("/.nokv/snapshots/{}", s.name), &s.tree)?;
        }
        let r = self.rt.block_on(self.fs.fsck()).unwrap();
        prop_assert!(r.is_clean(), "fsck: {:?}", r.violations);
        Ok(())
    }

    fn check_tree(&self, root: &str, tree: &Tree) -> R {
        let fs = &self.fs;
        let mut seen = Tree::new();
        let mut stack = vec![("/".to_string(), fs.resolve(root).unwrap())];
        self.rt.block_on(async {
            while let Some((rel, id)) = stack.pop() {
                let (entries, _) = fs.readdir(id, 0, 10_000, &ROOT).await.unwrap();
                for e in entries {
                    if e.name == b"." || e.name == b".." {
                        continue;
                    }
                    let p = join(&rel, std::str::from_utf8(&e.name).unwrap());
                    let a = fs.getattr(e.id).await.unwrap();
                    let xattrs: BTreeMap<String, u8> = if a.kind == FileType::Symlink {
                        BTreeMap::new()
                    } else {
                        let mut m = BTreeMap::new();
                        for n in fs.listxattr(e.id).await.unwrap() {
                            let v = fs.getxattr(e.id, &n, &ROOT).await.unwrap();
                            m.insert(String::from_utf8(n).unwrap(), v[0]);
                        }
                        m
                    };
                    let node = match a.kind {
                        FileType::Dir => {
                            stack.push((p.clone(), e.id));
                            Node::Dir {
                                perm: a.perm,
                                xattrs,
                            }
                        }
                        FileType::File => Node::File {
                            data: fs.read(e.id, 0, a.size as u32 + 1).await.unwrap().to_vec(),
                            perm: a.perm,
                            xattrs,
                            token: 0,
                        },
                        FileType::Symlink => Node::Symlink(fs.readlink(e.id).await.unwrap()),
                        k => panic!("unexpected {k:?}"),
                    };
                    seen.insert(p, node);
                }
            }
        });
        let strip = |t: &Tree| -> BTreeMap<String, Strict> {
            t.iter().map(|(p, n)| (p.clone(), n.strict())).collect()
        };
        let (want, got) = (strip(tree), strip(&seen));
        if want != got {
            let diff: Vec<_> = want
                .keys()
                .chain(got.keys())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|p| want.get(*p) != got.get(*p))
                .map(|p| {
                    let short = |x: Option<&Strict>| {
                        x.map(|(k, m, d, x)| format!("{k:?} {m:o} len {} {x:?}", d.len()))
                    };
                    format!(
                        "{p}: want {:?} got {:?}",
                        short(want.get(p)),
                        short(got.get(p))
                    )
                })
                .collect();
            return Err(TestCaseError::fail(format!("{root} differs: {diff:#?}")));
        }
        Ok(())
    }
}

#[test]
fn workspaces_match_model() {
    let ops = 150;
    let (mut runner, seed) = common::runner(
        "NOKV_WS_MODEL_SEED",
        "NOKV_WS_MODEL_CASES",
        32,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/workspace_model.txt"
        ),
    );
    println!("workspace model test: seed {seed} (replay with NOKV_WS_MODEL_SEED={seed}), {} cases x {ops} ops", runner.config().cases);
    let result = runner.run(&proptest::collection::vec(op(), ops), |ops| {
        let mut h = Harness::new();
        let every: usize = std::env::var("NOKV_WS_MODEL_CHECK_EVERY")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10);
        let trace = std::env::var_os("NOKV_WS_MODEL_TRACE").is_some();
        for (i, op) in ops.iter().enumerate() {
            if trace {
                eprintln!("op {i}: {op:?}");
            }
            let op_index = i;
            let at = |e: TestCaseError| TestCaseError::fail(format!("after op {i} {op:?}: {e}"));
            h.apply(op).map_err(at)?;
            // GC between every step: whatever it frees, every view must still read right.
            let gc = h.rt.block_on(h.fs.gc(&GcOptions {
                grace: std::time::Duration::ZERO,
                dry_run: false,
            }));
            prop_assert!(gc.is_ok(), "gc after op {i}: {gc:?}");
            if trace {
                let model: Vec<&String> = h.views[0].tree.keys().collect();
                let real = h.rt.block_on(async {
                    let mut out = Vec::new();
                    let mut stack = vec![("".to_string(), h.fs.resolve("/base").unwrap())];
                    while let Some((p, id)) = stack.pop() {
                        let (es, _) = h.fs.readdir(id, 0, 1000, &ROOT).await.unwrap();
                        for e in es {
                            if e.name == b"." || e.name == b".." {
                                continue;
                            }
                            let q = format!("{p}/{}", String::from_utf8_lossy(&e.name));
                            if e.kind == FileType::Dir {
                                stack.push((q.clone(), e.id));
                            }
                            out.push(q);
                        }
                    }
                    out.sort();
                    out
                });
                eprintln!(
                    "  after {op_index}: model /base {model:?}\n  real /base {real:?} views {:?}",
                    h.views.iter().map(|v| (&v.path, v.id)).collect::<Vec<_>>()
                );
            }
            if i % every == every - 1 {
                h.check().map_err(at)?;
            }
        }
        h.check()
    });
    if let Err(e) = result {
        panic!("workspace model test failed (seed {seed}): {e}");
    }
}
