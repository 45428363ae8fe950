//! NFS file handles: what they contain and how they are checked.
//!
//! A handle is 28 bytes, all fields big-endian:
//!
//! ```text
//! 0..2    b"NK"            magic
//! 2       1                format version
//! 3       0                reserved
//! 4..12   volume tag       FNV-1a 64 of the volume id string
//! 12..20  file id          (workspace << 44) | ino, as the core packs it
//! 20..28  generation       the inode's creation generation
//! ```
//!
//! Nothing in it depends on the server process, so handles survive restarts. Decoding
//! ([`Handle::decode`]) only checks the bytes: wrong length, magic, version, volume or a zero
//! inode is `BADHANDLE`. Whether the file still exists, with the same generation, is checked
//! against the core when the handle is used (`STALE` otherwise): see `nfs::Nfs::resolve`.

use nokv_core::FileId;

use crate::error::NfsError;

/// Length of every handle this server issues.
pub const HANDLE_LEN: usize = 28;
const MAGIC: [u8; 2] = *b"NK";
const VERSION: u8 = 1;

/// The volume part of a handle: a stable 64-bit hash of the volume id (FNV-1a, so it does
/// not change with the Rust version as `DefaultHasher` may).
pub fn volume_tag(volume_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in volume_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A decoded handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handle {
    /// The file id in the core.
    pub id: FileId,
    /// The inode's creation generation when the handle was issued.
    pub generation: u64,
}

impl Handle {
    /// Encodes the handle for volume `volume` (a [`volume_tag`]).
    pub fn encode(&self, volume: u64) -> [u8; HANDLE_LEN] {
        let mut out = [0u8; HANDLE_LEN];
        out[0..2].copy_from_slice(&MAGIC);
        out[2] = VERSION;
        out[4..12].copy_from_slice(&volume.to_be_bytes());
        out[12..20].copy_from_slice(&self.id.0.to_be_bytes());
        out[20..28].copy_from_slice(&self.generation.to_be_bytes());
        out
    }

    /// Decodes `bytes` as a handle of volume `volume`; anything else is `BADHANDLE`.
    pub fn decode(bytes: &[u8], volume: u64) -> Result<Handle, NfsError> {
        let b: &[u8; HANDLE_LEN] = bytes.try_into().map_err(|_| NfsError::BadHandle)?;
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            u64::from_be_bytes(w)
        };
        if b[0..2] != MAGIC || b[2] != VERSION || b[3] != 0 || word(4) != volume {
            return Err(NfsError::BadHandle);
        }
        let id = FileId(word(12));
        if id.ino() == 0 {
            return Err(NfsError::BadHandle);
        }
        Ok(Handle {
            id,
            generation: word(20),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let vol = volume_tag("00ab12cd34ef5678");
        let h = Handle {
            id: FileId::new(3, 42),
            generation: 7,
        };
        assert_eq!(Handle::decode(&h.encode(vol), vol).unwrap(), h);
    }

    #[test]
    fn foreign_short_long_and_garbled_handles_are_bad() {
        let vol = volume_tag("a");
        let other = volume_tag("b");
        assert_ne!(vol, other);
        let h = Handle {
            id: FileId::new(0, 1),
            generation: 1,
        }
        .encode(vol);
        assert_eq!(Handle::decode(&h, other), Err(NfsError::BadHandle));
        assert_eq!(Handle::decode(&h[..27], vol), Err(NfsError::BadHandle));
        assert_eq!(Handle::decode(&[0u8; 64], vol), Err(NfsError::BadHandle));
        assert_eq!(Handle::decode(&[], vol), Err(NfsError::BadHandle));
        for i in [0, 2, 3] {
            let mut bad = h;
            bad[i] ^= 0xff;
            assert_eq!(
                Handle::decode(&bad, vol),
                Err(NfsError::BadHandle),
                "byte {i}"
            );
        }
        let zero_ino = Handle {
            id: FileId::new(5, 0),
            generation: 1,
        }
        .encode(vol);
        assert_eq!(Handle::decode(&zero_ino, vol), Err(NfsError::BadHandle));
    }

    #[test]
    fn every_input_decodes_or_is_bad_without_panicking() {
        let vol = volume_tag("v");
        // A cheap exhaustive-ish sweep: every length, and every single-byte corruption.
        for len in 0..=64 {
            let _ = Handle::decode(&vec![0xA5; len], vol);
        }
        let good = Handle {
            id: FileId::new(1, 9),
            generation: 2,
        }
        .encode(vol);
        for i in 0..HANDLE_LEN {
            for v in [0u8, 1, 0x7f, 0xff] {
                let mut b = good;
                b[i] = v;
                let _ = Handle::decode(&b, vol);
            }
        }
    }
}
