//! `OpendalStore`: [`ObjectStore`] over OpenDAL (placeholder until implemented).

use std::ops::Range;
use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;

use super::{ObjectError, ObjectErrorKind, ObjectMeta, ObjectStore};

/// S3 connection settings.
#[derive(Debug, Clone, Default)]
pub struct S3Config {
    /// Endpoint URL.
    pub endpoint: Option<String>,
    /// Bucket.
    pub bucket: String,
    /// Region.
    pub region: Option<String>,
    /// Key prefix inside the bucket.
    pub root: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
}

/// Object store over OpenDAL.
#[derive(Debug)]
pub struct OpendalStore {
    _private: (),
}

impl OpendalStore {
    /// A store rooted at a local directory.
    pub fn fs(_root: &Path) -> Result<Self, ObjectError> {
        Err(ObjectError::new(ObjectErrorKind::Other, "unimplemented"))
    }
    /// A store on S3.
    pub fn s3(_cfg: &S3Config) -> Result<Self, ObjectError> {
        Err(ObjectError::new(ObjectErrorKind::Other, "unimplemented"))
    }
}

#[async_trait]
impl ObjectStore for OpendalStore {
    async fn put(&self, _key: &str, _data: Bytes) -> Result<(), ObjectError> {
        Err(ObjectError::new(ObjectErrorKind::Other, "unimplemented"))
    }
    async fn get_range(&self, _key: &str, _range: Range<u64>) -> Result<Bytes, ObjectError> {
        Err(ObjectError::new(ObjectErrorKind::Other, "unimplemented"))
    }
    async fn delete(&self, _key: &str) -> Result<(), ObjectError> {
        Err(ObjectError::new(ObjectErrorKind::Other, "unimplemented"))
    }
    async fn list(&self, _prefix: &str) -> Result<Vec<ObjectMeta>, ObjectError> {
        Err(ObjectError::new(ObjectErrorKind::Other, "unimplemented"))
    }
    fn describe(&self) -> String {
        "unimplemented".into()
    }
}
