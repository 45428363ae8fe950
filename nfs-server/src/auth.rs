//! Who may use the server: AUTH_UNIX credentials against an allowlist of uids.
//!
//! NFSv3 with AUTH_UNIX trusts the client to say who it is, so the server binds to loopback
//! by default and serves only the uids it is told to (by default: the owner of the volume's
//! data directory, and root). Every call except the NULL procedure (a ping, sent by clients
//! with `AUTH_NULL`) must carry an allowed AUTH_UNIX credential; the credential's uid and gid
//! become the core's [`Caller`], so the core's permission checks apply to every operation.

use nokv_core::Caller;

use crate::rpc::{AuthStat, Cred};

/// The set of uids served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPolicy {
    allowed: Vec<u32>,
}

impl AuthPolicy {
    /// Serves exactly `uids` (root is not implied).
    pub fn allow(uids: impl IntoIterator<Item = u32>) -> Self {
        let mut allowed: Vec<u32> = uids.into_iter().collect();
        allowed.sort_unstable();
        allowed.dedup();
        AuthPolicy { allowed }
    }

    /// The default policy for a volume whose data directory belongs to `owner`: `owner` and
    /// root.
    pub fn owner_and_root(owner: u32) -> Self {
        Self::allow([owner, 0])
    }

    /// The uids served, sorted.
    pub fn uids(&self) -> &[u32] {
        &self.allowed
    }

    /// The caller of a call with credential `cred`, or the `auth_stat` to refuse it with.
    pub fn check(&self, cred: &Cred) -> Result<Caller, AuthStat> {
        match cred {
            Cred::Unix(u) if self.allowed.binary_search(&u.uid).is_ok() => Ok(Caller {
                uid: u.uid,
                gid: u.gid,
            }),
            Cred::Unix(_) => Err(AuthStat::RejectedCred),
            Cred::BadUnix => Err(AuthStat::BadCred),
            Cred::Other(_) => Err(AuthStat::TooWeak),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::UnixCred;

    #[test]
    fn only_listed_unix_uids_pass() {
        let p = AuthPolicy::owner_and_root(1000);
        assert_eq!(p.uids(), &[0, 1000]);
        let me = Cred::Unix(UnixCred { uid: 1000, gid: 5 });
        assert_eq!(p.check(&me), Ok(Caller { uid: 1000, gid: 5 }));
        let other = Cred::Unix(UnixCred { uid: 1001, gid: 5 });
        assert_eq!(p.check(&other), Err(AuthStat::RejectedCred));
        assert_eq!(p.check(&Cred::Other(0)), Err(AuthStat::TooWeak));
        assert_eq!(p.check(&Cred::Other(6)), Err(AuthStat::TooWeak));
        assert_eq!(p.check(&Cred::BadUnix), Err(AuthStat::BadCred));
    }
}
