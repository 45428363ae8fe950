//! Reference-model property test of the core: random sequences of file operations run
//! against `Fs` (in-memory stores) and against a plain in-memory model; every result, and
//! periodically every listing, stat, content and xattr of the whole tree, must match.
//!
//! The seed is printed; set `NOKV_MODEL_SEED` to replay one. proptest shrinks failures and
//! records them in `proptest-regressions/`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use nokv_core::object::MemObjectStore;
use nokv_core::store::MemStore;
use nokv_core::{
    Caller, ErrorKind, FileId, FileType, Fs, FsOptions, RenameFlags, SetAttr, XattrMode, INLINE_MAX,
};
use proptest::prelude::*;

mod common;

const NAMES: [&str; 5] = ["a", "b", "c", "dd", "e"];
const XNAMES: [&str; 3] = ["user.x", "user.y", "user.z"];
const ROOT: Caller = Caller::ROOT;

#[derive(Debug, Clone)]
enum Op {
    Create(usize, usize),
    Mkdir(usize, usize),
    Symlink(usize, usize),
    Write(usize, u64, u32, u8),
    Truncate(usize, u64),
    Rename(usize, usize, usize, u8),
    Link(usize, usize, usize),
    Unlink(usize),
    Rmdir(usize),
    Chmod(usize, u32),
    SetXattr(usize, usize, u8, u8),
    RemoveXattr(usize, usize),
    Flush(usize),
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![9 => 0u64..(8 * INLINE_MAX), 1 => 0u64..9_000_000]
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0usize..64;
    prop_oneof![
        3 => (i.clone(), 0..NAMES.len()).prop_map(|(a, b)| Op::Create(a, b)),
        2 => (i.clone(), 0..NAMES.len()).prop_map(|(a, b)| Op::Mkdir(a, b)),
        1 => (i.clone(), 0..NAMES.len()).prop_map(|(a, b)| Op::Symlink(a, b)),
        5 => (i.clone(), offset(), prop_oneof![9 => 1u32..5000, 1 => 1u32..200_000], any::<u8>()).prop_map(|(a, o, l, b)| Op::Write(a, o, l, b)),
        2 => (i.clone(), offset()).prop_map(|(a, s)| Op::Truncate(a, s)),
        3 => (i.clone(), i.clone(), 0..NAMES.len(), 0u8..4).prop_map(|(a, b, c, f)| Op::Rename(a, b, c, f)),
        1 => (i.clone(), i.clone(), 0..NAMES.len()).prop_map(|(a, b, c)| Op::Link(a, b, c)),
        2 => i.clone().prop_map(Op::Unlink),
        1 => i.clone().prop_map(Op::Rmdir),
        1 => (i.clone(), 0u32..0o1000).prop_map(|(a, m)| Op::Chmod(a, m)),
        1 => (i.clone(), 0..XNAMES.len(), any::<u8>(), 0u8..3).prop_map(|(a, n, v, m)| Op::SetXattr(a, n, v, m)),
        1 => (i.clone(), 0..XNAMES.len()).prop_map(|(a, n)| Op::RemoveXattr(a, n)),
        2 => i.prop_map(Op::Flush),
    ]
}

#[derive(Debug, Clone)]
enum Kind {
    File(Vec<u8>),
    Dir(BTreeMap<Vec<u8>, usize>),
    Symlink(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    perm: u32,
    nlink: u32,
    parent: usize,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    id: FileId,
}

struct Model {
    nodes: HashMap<usize, Node>,
    next: usize,
}

type Res = Result<(), ErrorKind>;

impl Model {
    fn new() -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(
            0,
            Node {
                kind: Kind::Dir(BTreeMap::new()),
                perm: 0o755,
                nlink: 2,
                parent: 0,
                xattrs: BTreeMap::new(),
                id: FileId::ROOT,
            },
        );
        Model { nodes, next: 1 }
    }

    /// Every (path, parent node, name, node) in a stable order; index 0 is the root.
    fn entries(&self) -> Vec<(String, usize, Vec<u8>, usize)> {
        let mut out = vec![("/".to_string(), 0, Vec::new(), 0)];
        let mut stack = vec![(String::new(), 0usize)];
        while let Some((path, n)) = stack.pop() {
            if let Kind::Dir(es) = &self.nodes[&n].kind {
                for (name, &c) in es {
                    let p = format!("{path}/{}", String::from_utf8_lossy(name));
                    out.push((p.clone(), n, name.clone(), c));
                    if matches!(self.nodes[&c].kind, Kind::Dir(_)) {
                        stack.push((p, c));
                    }
                }
            }
        }
        out.sort();
        out
    }

    fn dirs(&self) -> Vec<usize> {
        self.entries()
            .into_iter()
            .filter(|e| matches!(self.nodes[&e.3].kind, Kind::Dir(_)))
            .map(|e| e.3)
            .collect()
    }

    fn children(&self, d: usize) -> &BTreeMap<Vec<u8>, usize> {
        match &self.nodes[&d].kind {
            Kind::Dir(es) => es,
            _ => unreachable!(),
        }
    }

    fn children_mut(&mut self, d: usize) -> &mut BTreeMap<Vec<u8>, usize> {
        match &mut self.nodes.get_mut(&d).unwrap().kind {
            Kind::Dir(es) => es,
            _ => unreachable!(),
        }
    }

    fn is_ancestor(&self, a: usize, mut d: usize) -> bool {
        loop {
            if d == a {
                return true;
            }
            if d == 0 {
                return false;
            }
            d = self.nodes[&d].parent;
        }
    }

    fn drop_link(&mut self, n: usize) {
        let node = self.nodes.get_mut(&n).unwrap();
        if matches!(node.kind, Kind::Dir(_)) {
            node.nlink = 0;
        } else {
            node.nlink -= 1;
        }
        if node.nlink == 0 {
            self.nodes.remove(&n);
        }
    }
}

fn kind_of(r: nokv_core::Result<impl Sized>) -> Res {
    r.map(|_| ()).map_err(|e| e.kind())
}

struct Harness {
    fs: Fs,
    model: Model,
    rt: tokio::runtime::Runtime,
    _tmp: tempfile::TempDir,
}

impl Harness {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let fs = Fs::new(
            Arc::new(MemStore::new()),
            Arc::new(MemObjectStore::new()),
            FsOptions::new("model", tmp.path().join("staging")),
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Harness {
            fs,
            model: Model::new(),
            rt,
            _tmp: tmp,
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let entries = self.model.entries();
        let dirs = self.model.dirs();
        let pick = |i: usize| entries[i % entries.len()].clone();
        let dir = |i: usize| dirs[i % dirs.len()];
        let fs = self.fs.clone();
        let m = &mut self.model;
        let (got, want): (Res, Res) = match op.clone() {
            Op::Create(d, n) | Op::Mkdir(d, n) | Op::Symlink(d, n) => {
                let d = dir(d);
                let name = NAMES[n].as_bytes().to_vec();
                let pid = m.nodes[&d].id;
                let want = if m.children(d).contains_key(&name) {
                    Err(ErrorKind::Exists)
                } else {
                    Ok(())
                };
                let r = self.rt.block_on(async {
                    match op {
                        Op::Create(..) => fs.create(pid, &name, 0o644, &ROOT, true).await,
                        Op::Mkdir(..) => fs.mkdir(pid, &name, 0o755, &ROOT).await,
                        _ => fs.symlink(pid, &name, b"target/of/link", &ROOT).await,
                    }
                });
                if let Ok(a) = &r {
                    let kind = match op {
                        Op::Create(..) => Kind::File(Vec::new()),
                        Op::Mkdir(..) => Kind::Dir(BTreeMap::new()),
                        _ => Kind::Symlink(b"target/of/link".to_vec()),
                    };
                    let is_dir = matches!(kind, Kind::Dir(_));
                    let id = m.next;
                    m.next += 1;
                    m.nodes.insert(
                        id,
                        Node {
                            kind,
                            perm: a.perm,
                            nlink: if is_dir { 2 } else { 1 },
                            parent: d,
                            xattrs: BTreeMap::new(),
                            id: a.id,
                        },
                    );
                    m.children_mut(d).insert(name, id);
                    if is_dir {
                        m.nodes.get_mut(&d).unwrap().nlink += 1;
                    }
                }
                (kind_of(r), want)
            }
            Op::Write(i, off, len, byte) => {
                let (_, _, _, n) = pick(i);
                let id = m.nodes[&n].id;
                let data = vec![byte; len as usize];
                let want = match &mut m.nodes.get_mut(&n).unwrap().kind {
                    Kind::File(d) => {
                        let end = off as usize + len as usize;
                        if d.len() < end {
                            d.resize(end, 0);
                        }
                        d[off as usize..end].copy_from_slice(&data);
                        Ok(())
                    }
                    Kind::Dir(_) => Err(ErrorKind::IsDir),
                    Kind::Symlink(_) => Err(ErrorKind::InvalidArgument),
                };
                (kind_of(self.rt.block_on(fs.write(id, off, &data))), want)
            }
            Op::Truncate(i, size) => {
                let (_, _, _, n) = pick(i);
                let id = m.nodes[&n].id;
                let want = match &mut m.nodes.get_mut(&n).unwrap().kind {
                    Kind::File(d) => {
                        d.resize(size as usize, 0);
                        Ok(())
                    }
                    Kind::Dir(_) => Err(ErrorKind::IsDir),
                    Kind::Symlink(_) => Err(ErrorKind::InvalidArgument),
                };
                let set = SetAttr {
                    size: Some(size),
                    ..Default::default()
                };
                (kind_of(self.rt.block_on(fs.setattr(id, &set, &ROOT))), want)
            }
            Op::Rename(s, d, n, flags) => {
                let (_, sp, sname, snode) = pick(s);
                let dd = dir(d);
                let dname = NAMES[n].as_bytes().to_vec();
                let fl = RenameFlags {
                    noreplace: flags == 1,
                    exchange: flags == 2,
                };
                if snode == 0 {
                    return Ok(());
                }
                let (sid, did) = (m.nodes[&sp].id, m.nodes[&dd].id);
                let got = kind_of(
                    self.rt
                        .block_on(fs.rename(sid, &sname, did, &dname, fl, &ROOT)),
                );
                let want = model_rename(m, sp, &sname, snode, dd, &dname, fl);
                (got, want)
            }
            Op::Link(f, d, n) => {
                let (_, _, _, fnode) = pick(f);
                let dd = dir(d);
                let name = NAMES[n].as_bytes().to_vec();
                let want = if matches!(m.nodes[&fnode].kind, Kind::Dir(_)) {
                    Err(ErrorKind::NotPermitted)
                } else if m.children(dd).contains_key(&name) {
                    Err(ErrorKind::Exists)
                } else {
                    m.children_mut(dd).insert(name.clone(), fnode);
                    m.nodes.get_mut(&fnode).unwrap().nlink += 1;
                    Ok(())
                };
                let (fid, did) = (m.nodes[&fnode].id, m.nodes[&dd].id);
                (
                    kind_of(self.rt.block_on(fs.link(fid, did, &name, &ROOT))),
                    want,
                )
            }
            Op::Unlink(i) | Op::Rmdir(i) => {
                let (_, p, name, n) = pick(i);
                if n == 0 {
                    return Ok(());
                }
                let is_dir = matches!(m.nodes[&n].kind, Kind::Dir(_));
                let rmdir = matches!(op, Op::Rmdir(_));
                let pid = m.nodes[&p].id;
                let want = match (rmdir, is_dir) {
                    (false, true) => Err(ErrorKind::IsDir),
                    (true, false) => Err(ErrorKind::NotDir),
                    (true, true) if !m.children(n).is_empty() => Err(ErrorKind::NotEmpty),
                    _ => {
                        m.children_mut(p).remove(&name);
                        if is_dir {
                            m.nodes.get_mut(&p).unwrap().nlink -= 1;
                        }
                        m.drop_link(n);
                        Ok(())
                    }
                };
                let r = self.rt.block_on(async {
                    if rmdir {
                        fs.rmdir(pid, &name, &ROOT).await
                    } else {
                        fs.unlink(pid, &name, &ROOT).await
                    }
                });
                (kind_of(r), want)
            }
            Op::Chmod(i, mode) => {
                let (_, _, _, n) = pick(i);
                m.nodes.get_mut(&n).unwrap().perm = mode;
                let set = SetAttr {
                    mode: Some(mode),
                    ..Default::default()
                };
                (
                    kind_of(self.rt.block_on(fs.setattr(m.nodes[&n].id, &set, &ROOT))),
                    Ok(()),
                )
            }
            Op::SetXattr(i, x, v, mode) => {
                let (_, _, _, n) = pick(i);
                let name = XNAMES[x].as_bytes().to_vec();
                let node = m.nodes.get_mut(&n).unwrap();
                let present = node.xattrs.contains_key(&name);
                let xm = [XattrMode::Any, XattrMode::Create, XattrMode::Replace][mode as usize];
                let want = match xm {
                    XattrMode::Create if present => Err(ErrorKind::Exists),
                    XattrMode::Replace if !present => Err(ErrorKind::NoData),
                    _ => {
                        node.xattrs.insert(name.clone(), vec![v; 3]);
                        Ok(())
                    }
                };
                (
                    kind_of(
                        self.rt
                            .block_on(fs.setxattr(node.id, &name, &[v; 3], xm, &ROOT)),
                    ),
                    want,
                )
            }
            Op::RemoveXattr(i, x) => {
                let (_, _, _, n) = pick(i);
                let name = XNAMES[x].as_bytes().to_vec();
                let node = m.nodes.get_mut(&n).unwrap();
                let want = if node.xattrs.remove(&name).is_some() {
                    Ok(())
                } else {
                    Err(ErrorKind::NoData)
                };
                (
                    kind_of(self.rt.block_on(fs.removexattr(node.id, &name, &ROOT))),
                    want,
                )
            }
            Op::Flush(i) => {
                let (_, _, _, n) = pick(i);
                (kind_of(self.rt.block_on(fs.flush(m.nodes[&n].id))), Ok(()))
            }
        };
        prop_assert_eq!(got, want, "op {:?}", op);
        Ok(())
    }

    /// Compares the whole tree: listings, kinds, sizes, contents, modes, link counts, xattrs.
    fn check(&self) -> Result<(), TestCaseError> {
        let fs = &self.fs;
        for (path, _, _, n) in self.model.entries() {
            let node = &self.model.nodes[&n];
            let attr = self
                .rt
                .block_on(fs.getattr(node.id))
                .map_err(|e| TestCaseError::fail(format!("{path}: {e}")))?;
            prop_assert_eq!(attr.perm, node.perm, "perm of {}", path);
            prop_assert_eq!(attr.nlink, node.nlink, "nlink of {}", path);
            let xattrs = self.rt.block_on(fs.listxattr(node.id)).unwrap();
            prop_assert_eq!(
                xattrs,
                node.xattrs.keys().cloned().collect::<Vec<_>>(),
                "xattrs of {}",
                path
            );
            for (k, v) in &node.xattrs {
                prop_assert_eq!(
                    &self.rt.block_on(fs.getxattr(node.id, k, &ROOT)).unwrap(),
                    v
                );
            }
            match &node.kind {
                Kind::File(d) => {
                    prop_assert_eq!(attr.kind, FileType::File);
                    prop_assert_eq!(attr.size, d.len() as u64, "size of {}", path);
                    let got = self
                        .rt
                        .block_on(fs.read(node.id, 0, d.len() as u32 + 1))
                        .unwrap();
                    prop_assert!(got[..] == d[..], "content of {} differs", path);
                }
                Kind::Symlink(t) => {
                    prop_assert_eq!(&self.rt.block_on(fs.readlink(node.id)).unwrap(), t);
                }
                Kind::Dir(es) => {
                    prop_assert_eq!(attr.kind, FileType::Dir);
                    let mut names = Vec::new();
                    let mut cookie = 0;
                    loop {
                        let (page, eof) = self
                            .rt
                            .block_on(fs.readdir(node.id, cookie, 7, &ROOT))
                            .unwrap();
                        for e in &page {
                            if e.name != b"." && e.name != b".." {
                                names.push(e.name.clone());
                                prop_assert_eq!(e.id, self.model.nodes[&es[&e.name]].id);
                            }
                        }
                        if eof {
                            break;
                        }
                        cookie = page.last().map_or(cookie, |e| e.cookie);
                    }
                    names.sort();
                    prop_assert_eq!(
                        names,
                        es.keys().cloned().collect::<Vec<_>>(),
                        "listing of {}",
                        path
                    );
                }
            }
        }
        Ok(())
    }
}

fn model_rename(
    m: &mut Model,
    sp: usize,
    sname: &[u8],
    snode: usize,
    dd: usize,
    dname: &[u8],
    fl: RenameFlags,
) -> Res {
    let target = m.children(dd).get(dname).copied();
    if sp == dd && sname == dname {
        return if fl.exchange && target.is_none() {
            Err(ErrorKind::NotFound)
        } else {
            Ok(())
        };
    }
    let s_dir = matches!(m.nodes[&snode].kind, Kind::Dir(_));
    if s_dir && m.is_ancestor(snode, dd) {
        return Err(ErrorKind::InvalidArgument);
    }
    if fl.exchange {
        let Some(t) = target else {
            return Err(ErrorKind::NotFound);
        };
        let t_dir = matches!(m.nodes[&t].kind, Kind::Dir(_));
        if t_dir && m.is_ancestor(t, sp) {
            return Err(ErrorKind::InvalidArgument);
        }
        m.children_mut(dd).insert(dname.to_vec(), snode);
        m.children_mut(sp).insert(sname.to_vec(), t);
        m.nodes.get_mut(&snode).unwrap().parent = dd;
        m.nodes.get_mut(&t).unwrap().parent = sp;
        if sp != dd {
            let d = i64::from(s_dir) - i64::from(t_dir);
            let s = m.nodes.get_mut(&sp).unwrap();
            s.nlink = (i64::from(s.nlink) - d) as u32;
            let t = m.nodes.get_mut(&dd).unwrap();
            t.nlink = (i64::from(t.nlink) + d) as u32;
        }
        return Ok(());
    }
    if let Some(t) = target {
        if fl.noreplace {
            return Err(ErrorKind::Exists);
        }
        if t == snode {
            return Ok(());
        }
        let t_dir = matches!(m.nodes[&t].kind, Kind::Dir(_));
        match (s_dir, t_dir) {
            (true, false) => return Err(ErrorKind::NotDir),
            (false, true) => return Err(ErrorKind::IsDir),
            (true, true) if !m.children(t).is_empty() => return Err(ErrorKind::NotEmpty),
            (true, true) => m.nodes.get_mut(&dd).unwrap().nlink -= 1,
            _ => {}
        }
        m.drop_link(t);
    }
    m.children_mut(sp).remove(sname);
    m.children_mut(dd).insert(dname.to_vec(), snode);
    if s_dir && sp != dd {
        m.nodes.get_mut(&sp).unwrap().nlink -= 1;
        m.nodes.get_mut(&dd).unwrap().nlink += 1;
    }
    m.nodes.get_mut(&snode).unwrap().parent = dd;
    Ok(())
}

#[test]
fn fs_matches_model() {
    let ops: usize = 400;
    let (mut runner, seed) = common::runner(
        "NOKV_MODEL_SEED",
        "NOKV_MODEL_CASES",
        25,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/model.txt"
        ),
    );
    let cases = runner.config().cases;
    println!("model test: seed {seed} (replay with NOKV_MODEL_SEED={seed}), {cases} cases x {ops} ops = {} operations", cases as usize * ops);
    let result = runner.run(&proptest::collection::vec(op(), ops), |ops| {
        let mut h = Harness::new();
        for (i, op) in ops.iter().enumerate() {
            h.apply(op)?;
            if i % 50 == 49 {
                h.check()?;
            }
        }
        h.check()
    });
    if let Err(e) = result {
        panic!("model test failed (seed {seed}): {e}");
    }
}
