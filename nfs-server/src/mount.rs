//! The MOUNT program (100005, version 3), served on the same port as NFS.
//!
//! One export, `/`, the volume root. MNT also accepts a path below it (resolved with the
//! caller's permissions) and answers its handle. The server keeps no mount list: DUMP is
//! empty and UMNT/UMNTALL do nothing (a mount holds no server state).

use nfs3_types::mount::{
    dirpath, export_node, exports, fhandle3, mountres3, mountres3_ok, mountstat3,
};
use nfs3_types::xdr_codec::{List, Opaque};
use nokv_core::{Attr, Caller, ErrorKind, FileType};

use crate::nfs::{pack, Fault, Nfs, Out};
use crate::rpc::AUTH_UNIX;
use crate::xdr::Decoder;

/// MOUNT program number.
pub const PROGRAM: u32 = 100_005;
/// MOUNT version served.
pub const VERSION: u32 = 3;
/// Longest mount path (`MNTPATHLEN`).
const MNTPATHLEN: usize = 1024;

/// Runs MOUNT procedure `proc_` for `caller`, appending its result.
pub async fn dispatch(
    nfs: &Nfs,
    proc_: u32,
    args: &[u8],
    caller: Caller,
    out: &mut Vec<u8>,
) -> Out {
    let mut d = Decoder::new(args);
    match proc_ {
        0 => Ok(()),
        1 => {
            let path = d.opaque(MNTPATHLEN)?;
            let res = match mnt(nfs, path, &caller).await {
                Ok(a) => mountres3::Ok(mountres3_ok {
                    fhandle: fhandle3(nfs.fh(&a).data),
                    auth_flavors: vec![AUTH_UNIX],
                }),
                Err(stat) => mountres3::Err(stat),
            };
            pack(out, &res)
        }
        // DUMP: an empty mount list.
        2 => pack(out, &false),
        3 => {
            let _path = d.opaque(MNTPATHLEN)?;
            Ok(())
        }
        4 => Ok(()),
        5 => {
            let list: exports<'_, '_> = List(vec![export_node {
                ex_dir: dirpath(Opaque::borrowed(b"/")),
                ex_groups: List(Vec::new()),
            }]);
            pack(out, &list)
        }
        _ => Err(Fault::NoProc),
    }
}

/// The directory a MNT path names.
async fn mnt(nfs: &Nfs, path: &[u8], caller: &Caller) -> Result<Attr, mountstat3> {
    let fs = &nfs.fs;
    let mut a = fs
        .getattr(fs.root())
        .await
        .map_err(|_| mountstat3::MNT3ERR_SERVERFAULT)?;
    for name in path.split(|b| *b == b'/').filter(|n| !n.is_empty()) {
        a = fs
            .lookup(a.id, name, caller)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound => mountstat3::MNT3ERR_NOENT,
                ErrorKind::NotDir => mountstat3::MNT3ERR_NOTDIR,
                ErrorKind::PermissionDenied => mountstat3::MNT3ERR_ACCES,
                ErrorKind::NameTooLong => mountstat3::MNT3ERR_NAMETOOLONG,
                ErrorKind::InvalidArgument => mountstat3::MNT3ERR_INVAL,
                _ => mountstat3::MNT3ERR_IO,
            })?;
    }
    if a.kind != FileType::Dir {
        return Err(mountstat3::MNT3ERR_NOTDIR);
    }
    Ok(a)
}
