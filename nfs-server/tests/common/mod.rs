//! Helpers shared by the NFS protocol tests: the server on an ephemeral port over a real
//! volume, an `nfs3_client` connection, and one small function per procedure.
#![allow(dead_code, unused_imports)]

pub use std::collections::BTreeMap;
pub use std::net::SocketAddr;
pub use std::path::Path;
pub use std::time::Duration;

pub use nfs3_client::io::{AsyncRead, AsyncWrite};
pub use nfs3_client::net::Connector;
pub use nfs3_client::nfs3_types::mount::{dirpath, mountstat3};
pub use nfs3_client::nfs3_types::nfs3::*;
pub use nfs3_client::nfs3_types::rpc::{auth_stat, auth_unix, opaque_auth};
pub use nfs3_client::nfs3_types::xdr_codec::{Opaque, Void};
pub use nfs3_client::rpc::RpcClient;
pub use nfs3_client::{
    ConnectError, MountClient, MountError, Nfs3Client, Nfs3Connection, Nfs3ConnectionBuilder,
    RpcError,
};
pub use nokv_core::{Caller, Volume, VolumeConfig};
pub use nokv_nfs::{AuthPolicy, NfsServer, ServerConfig};
pub use tokio::io::{AsyncReadExt, AsyncWriteExt};
pub use tokio::net::TcpStream;

pub type Conn = Nfs3Connection<Io>;

/// A TCP stream for `nfs3_client`. Unlike its `TokioIo`, a read of 0 bytes (the server
/// closed the connection) is an error: `nfs3_client` 0.9.1's `async_read_exact` would
/// otherwise spin forever without yielding.
pub struct Io(pub TcpStream);

impl AsyncRead for Io {
    async fn async_read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf).await? {
            0 if !buf.is_empty() => Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => Ok(n),
        }
    }
}

impl AsyncWrite for Io {
    async fn async_write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).await
    }
}

pub struct Tcp;

impl Connector for Tcp {
    type Connection = Io;

    async fn connect(&self, addr: SocketAddr) -> std::io::Result<Io> {
        Ok(Io(TcpStream::connect(addr).await?))
    }

    async fn connect_with_port(&self, addr: SocketAddr, _port: u16) -> std::io::Result<Io> {
        self.connect(addr).await
    }
}

/// The uids served in these tests: root and an ordinary user.
pub const USER: u32 = 1000;

pub struct Served {
    pub volume: Volume,
    pub server: NfsServer,
}

impl Served {
    pub async fn start(dir: &Path) -> Served {
        Self::start_with_idle_flush(dir, Duration::from_secs(5)).await
    }

    pub async fn start_with_idle_flush(dir: &Path, idle_flush: Duration) -> Served {
        Self::start_with(VolumeConfig::new(dir), idle_flush).await
    }

    pub async fn start_with(vcfg: VolumeConfig, idle_flush: Duration) -> Served {
        let volume = Volume::open(&vcfg).expect("open volume");
        let mut cfg =
            ServerConfig::new("127.0.0.1:0".parse().unwrap(), AuthPolicy::allow([0, USER]));
        cfg.idle_flush = idle_flush;
        let server = NfsServer::start(volume.fs().clone(), volume.id(), cfg)
            .await
            .expect("start server");
        Served { volume, server }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub async fn stop(self) {
        self.server.shutdown().await;
        self.volume.close().await.expect("close volume");
    }
}

pub fn cred(uid: u32, gid: u32) -> opaque_auth<'static> {
    opaque_auth::auth_unix(&auth_unix {
        stamp: 1,
        machinename: Opaque::borrowed(b"test"),
        uid,
        gid,
        gids: vec![],
    })
}

pub async fn connect_as(addr: SocketAddr, uid: u32, gid: u32) -> Result<Conn, ConnectError> {
    Nfs3ConnectionBuilder::new(Tcp, addr.ip().to_string(), "/")
        .connect_from_privileged_port(false)
        .mount_port(addr.port())
        .nfs3_port(addr.port())
        .credential(cred(uid, gid))
        .mount()
        .await
}

pub async fn connect(addr: SocketAddr) -> Conn {
    connect_as(addr, 0, 0).await.expect("mount as root")
}

/// A raw RPC client on a fresh connection, for calls `Nfs3Client` cannot express.
pub async fn raw(addr: SocketAddr, cred: opaque_auth<'static>) -> RpcClient<Io> {
    let io = Tcp.connect(addr).await.unwrap();
    RpcClient::new_with_auth(io, cred, opaque_auth::default())
}

pub fn st<T, E>(r: Nfs3Result<T, E>) -> Result<T, nfsstat3> {
    match r {
        Nfs3Result::Ok(v) => Ok(v),
        Nfs3Result::Err((s, _)) => Err(s),
    }
}

pub fn name(s: &str) -> filename3<'static> {
    filename3(Opaque::owned(s.as_bytes().to_vec()))
}

pub fn dirop(dir: &nfs_fh3, n: &str) -> diropargs3<'static> {
    diropargs3 {
        dir: dir.clone(),
        name: name(n),
    }
}

pub fn mode(m: u32) -> sattr3 {
    sattr3 {
        mode: set_mode3::Some(m),
        ..Default::default()
    }
}

pub fn fh_of(obj: post_op_fh3) -> nfs_fh3 {
    match obj {
        post_op_fh3::Some(fh) => fh,
        post_op_fh3::None => panic!("reply without a handle"),
    }
}

pub async fn getattr(c: &mut Conn, fh: &nfs_fh3) -> Result<fattr3, nfsstat3> {
    let r = c
        .getattr(&GETATTR3args { object: fh.clone() })
        .await
        .unwrap();
    st(r).map(|ok| ok.obj_attributes)
}

pub async fn lookup(c: &mut Conn, dir: &nfs_fh3, n: &str) -> Result<nfs_fh3, nfsstat3> {
    let r = c
        .lookup(&LOOKUP3args {
            what: dirop(dir, n),
        })
        .await
        .unwrap();
    st(r).map(|ok| ok.object)
}

pub async fn create(
    c: &mut Conn,
    dir: &nfs_fh3,
    n: &str,
    how: createhow3,
) -> Result<nfs_fh3, nfsstat3> {
    let args = CREATE3args {
        where_: dirop(dir, n),
        how,
    };
    st(c.create(&args).await.unwrap()).map(|ok| fh_of(ok.obj))
}

pub async fn mkdir(c: &mut Conn, dir: &nfs_fh3, n: &str, m: u32) -> Result<nfs_fh3, nfsstat3> {
    let args = MKDIR3args {
        where_: dirop(dir, n),
        attributes: mode(m),
    };
    st(c.mkdir(&args).await.unwrap()).map(|ok| fh_of(ok.obj))
}

pub async fn write(
    c: &mut Conn,
    fh: &nfs_fh3,
    offset: u64,
    data: &[u8],
    stable: stable_how,
) -> Result<WRITE3resok, nfsstat3> {
    let args = WRITE3args {
        file: fh.clone(),
        offset,
        count: data.len() as u32,
        stable,
        data: Opaque::borrowed(data),
    };
    st(c.write(&args).await.unwrap())
}

pub async fn read(
    c: &mut Conn,
    fh: &nfs_fh3,
    offset: u64,
    count: u32,
) -> Result<(Vec<u8>, bool), nfsstat3> {
    let args = READ3args {
        file: fh.clone(),
        offset,
        count,
    };
    st(c.read(&args).await.unwrap()).map(|ok| (ok.data.to_vec(), ok.eof))
}

pub async fn commit(c: &mut Conn, fh: &nfs_fh3) -> Result<writeverf3, nfsstat3> {
    let args = COMMIT3args {
        file: fh.clone(),
        offset: 0,
        count: 0,
    };
    st(c.commit(&args).await.unwrap()).map(|ok| ok.verf)
}

pub async fn access(c: &mut Conn, fh: &nfs_fh3, want: u32) -> u32 {
    let args = ACCESS3args {
        object: fh.clone(),
        access: want,
    };
    st(c.access(&args).await.unwrap()).expect("ACCESS").access
}

/// One READDIR page: names with cookies, and eof.
pub async fn readdir_page(
    c: &mut Conn,
    dir: &nfs_fh3,
    cookie: u64,
    plus: bool,
) -> (Vec<(String, u64)>, bool) {
    if plus {
        let args = READDIRPLUS3args {
            dir: dir.clone(),
            cookie,
            cookieverf: cookieverf3::default(),
            dircount: 2048,
            maxcount: 8192,
        };
        let ok = st(c.readdirplus(&args).await.unwrap()).expect("READDIRPLUS");
        let page = ok
            .reply
            .entries
            .into_inner()
            .into_iter()
            .map(|e| {
                assert!(e.name_attributes.is_some() && e.name_handle.is_some());
                (String::from_utf8(e.name.0.to_vec()).unwrap(), e.cookie)
            })
            .collect();
        (page, ok.reply.eof)
    } else {
        let args = READDIR3args {
            dir: dir.clone(),
            cookie,
            cookieverf: cookieverf3::default(),
            count: 4096,
        };
        let ok = st(c.readdir(&args).await.unwrap()).expect("READDIR");
        let page = ok
            .reply
            .entries
            .into_inner()
            .into_iter()
            .map(|e| (String::from_utf8(e.name.0.to_vec()).unwrap(), e.cookie))
            .collect();
        (page, ok.reply.eof)
    }
}

/// Every name of a directory listing, in order, and the number of pages it took.
pub async fn list(c: &mut Conn, dir: &nfs_fh3, plus: bool) -> (Vec<String>, usize) {
    let (mut names, mut cookie, mut pages) = (Vec::new(), 0, 0);
    loop {
        let (page, eof) = readdir_page(c, dir, cookie, plus).await;
        pages += 1;
        if let Some((_, last)) = page.last() {
            cookie = *last;
        }
        names.extend(page.into_iter().map(|(n, _)| n));
        if eof {
            return (names, pages);
        }
        assert!(pages < 100_000, "listing does not end");
    }
}

/// Where a path's directory is and the handle of the file, looked up from the root.
pub async fn walk(c: &mut Conn, root: &nfs_fh3, path: &str) -> Result<nfs_fh3, nfsstat3> {
    let mut cur = root.clone();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        cur = lookup(c, &cur, part).await?;
    }
    Ok(cur)
}

/// Creates (or truncates) the file at `path` and writes `data` to it, FILE_SYNC.
pub async fn put(c: &mut Conn, root: &nfs_fh3, path: &str, data: &[u8]) {
    let (dir, file) = path.rsplit_once('/').unwrap();
    let d = walk(c, root, dir).await.unwrap();
    let f = create(c, &d, file, createhow3::UNCHECKED(mode(0o644)))
        .await
        .unwrap();
    let trunc = SETATTR3args {
        object: f.clone(),
        new_attributes: sattr3 {
            size: set_size3::Some(0),
            ..Default::default()
        },
        guard: sattrguard3::None,
    };
    st(c.setattr(&trunc).await.unwrap()).unwrap();
    write(c, &f, 0, data, stable_how::FILE_SYNC).await.unwrap();
}

/// The whole content of the file at `path`.
pub async fn cat(c: &mut Conn, root: &nfs_fh3, path: &str) -> Result<Vec<u8>, nfsstat3> {
    let f = walk(c, root, path).await?;
    let mut out = Vec::new();
    loop {
        let (data, eof) = read(c, &f, out.len() as u64, 64 * 1024).await?;
        out.extend_from_slice(&data);
        if eof || data.is_empty() {
            return Ok(out);
        }
    }
}

/// REMOVE of the file at `path`.
pub async fn remove(c: &mut Conn, root: &nfs_fh3, path: &str) -> Result<(), nfsstat3> {
    let (dir, file) = path.rsplit_once('/').unwrap();
    let d = walk(c, root, dir).await?;
    st(c.remove(&REMOVE3args {
        object: dirop(&d, file),
    })
    .await
    .unwrap())
    .map(|_| ())
}

/// The names in a directory, by READDIR and by READDIRPLUS (which must agree).
pub async fn names(c: &mut Conn, dir: &nfs_fh3) -> Vec<String> {
    let (mut plain, _) = list(c, dir, false).await;
    let (mut plus, _) = list(c, dir, true).await;
    plain.sort();
    plus.sort();
    assert_eq!(plain, plus);
    plain
}

/// Files of the base: name -> content. `big` is stored as a block object, the rest inline.
pub fn base_files() -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for i in 0..10 {
        m.insert(format!("f{i}"), format!("base file {i}\n").into_bytes());
    }
    m.insert("big".into(), vec![7u8; 200 * 1024]);
    m
}

/// Reads every file of the tree at `path` (flat: the test trees have no subdirectories).
pub async fn tree(c: &mut Conn, root: &nfs_fh3, path: &str) -> BTreeMap<String, Vec<u8>> {
    let d = walk(c, root, path)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e:?}"));
    let mut out = BTreeMap::new();
    for n in names(c, &d).await {
        if n != "." && n != ".." {
            let data = cat(c, root, &format!("{path}/{n}"))
                .await
                .unwrap_or_else(|e| panic!("{path}/{n}: {e:?}"));
            out.insert(n, data);
        }
    }
    out
}

/// Changes forks `/forks/f0..fN` of the seed workflow through NFS: fork `i` modifies
/// `f{i%10}`, adds `new-{i}` and deletes `f{(i+3)%10}`; fork 1 also gets `own-big`, a block
/// object only it references. Returns each fork's expected diff against the base.
pub async fn edit_forks(c: &mut Conn, root: &nfs_fh3, forks: usize) -> Vec<String> {
    let mut expected = Vec::new();
    for i in 0..forks {
        let (m, d) = (i % 10, (i + 3) % 10);
        let fork = format!("/forks/f{i}");
        put(
            c,
            root,
            &format!("{fork}/f{m}"),
            format!("fork {i}\n").as_bytes(),
        )
        .await;
        put(c, root, &format!("{fork}/new-{i}"), b"added\n").await;
        remove(c, root, &format!("{fork}/f{d}")).await.unwrap();
        let mut want = vec![
            (format!("/f{m}"), 'M'),
            (format!("/new-{i}"), 'A'),
            (format!("/f{d}"), 'D'),
        ];
        if i == 1 {
            want.push(("/own-big".to_string(), 'A'));
        }
        want.sort();
        expected.push(
            want.into_iter()
                .map(|(p, l)| format!("{l} {p}\n"))
                .collect(),
        );
    }
    put(c, root, "/forks/f1/own-big", &[9u8; 100 * 1024]).await;
    expected
}
