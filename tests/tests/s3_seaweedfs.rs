//! The S3 object store against a real S3 server (SeaweedFS from PyPI): the same behaviour suite
//! as the `fs` unit tests, at real sizes (a 20 MiB object, hundreds of keys), plus what only S3
//! has (credentials, buckets, a key prefix inside the bucket).
//!
//! Fails, never skips, when SeaweedFS cannot be installed or started.

use std::time::{Duration, Instant};

use bytes::Bytes;
use nokv_core::object::conformance::{self, Expect};
use nokv_core::object::{ObjectErrorKind, ObjectStore, OpendalStore, S3Config};
use nokv_tests::seaweed::{in_private_netns, SeaweedFs, BUCKET};

/// Run one step and say how long it took.
async fn step<F: std::future::Future<Output = ()>>(name: &str, f: F) {
    let start = Instant::now();
    f.await;
    println!("step {name}: {:.2?}", start.elapsed());
}

#[test]
fn s3_store_against_seaweedfs() {
    in_private_netns(
        "s3_store_against_seaweedfs",
        Duration::from_secs(110),
        || {
            let start = Instant::now();
            let server =
                SeaweedFs::start().unwrap_or_else(|e| panic!("cannot start SeaweedFS: {e}"));
            println!("step start_server: {:.2?}", start.elapsed());
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(behaviour(&server));
            rt.block_on(s3_specifics(&server));
        },
    );
}

async fn behaviour(server: &SeaweedFs) {
    let store = OpendalStore::s3(&server.s3_config(BUCKET)).unwrap();
    assert_eq!(
        store.describe(),
        format!("s3://{BUCKET} at {}", server.endpoint())
    );
    let p = "suite/";
    step("round_trip", conformance::round_trip(&store, p)).await;
    step(
        "ranges_past_the_end",
        conformance::ranges_past_the_end(&store, p),
    )
    .await;
    step("empty_object", conformance::empty_object(&store, p)).await;
    step("missing_key", conformance::missing_key(&store, p)).await;
    step(
        "delete_is_idempotent",
        conformance::delete_is_idempotent(&store, p),
    )
    .await;
    let expect = Expect {
        modified_times: true,
    };
    step(
        "list_recursive",
        conformance::list_recursive(&store, p, expect),
    )
    .await;
    step(
        "large_object_20MiB",
        conformance::large_object(&store, p, 20 << 20),
    )
    .await;
    step("many_keys_500", conformance::many_keys(&store, p, 500)).await;
}

async fn s3_specifics(server: &SeaweedFs) {
    // A key prefix inside the bucket: keys and listings stay relative to it.
    step("root_prefix", async {
        let cfg = S3Config {
            root: Some("volumes/v1".into()),
            ..server.s3_config(BUCKET)
        };
        let store = OpendalStore::s3(&cfg).unwrap();
        store
            .put("blocks/a", Bytes::from_static(b"abc"))
            .await
            .unwrap();
        let listed = store.list("blocks/").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].key.as_str(), listed[0].size), ("blocks/a", 3));
        let outside = OpendalStore::s3(&server.s3_config(BUCKET)).unwrap();
        let got = outside
            .get_range("volumes/v1/blocks/a", 0..3)
            .await
            .unwrap();
        assert_eq!(&got[..], b"abc");
    })
    .await;

    // Buckets made by the helper are usable.
    step("second_bucket", async {
        server.create_bucket("nokv-second").unwrap();
        server.create_bucket("nokv-second").unwrap();
        let store = OpendalStore::s3(&server.s3_config("nokv-second")).unwrap();
        conformance::round_trip(&store, "").await;
    })
    .await;

    // Wrong credentials are refused at once, not retried into `Unavailable`.
    step("wrong_credentials", async {
        let cfg = S3Config {
            secret_access_key: Some("wrong".into()),
            ..server.s3_config(BUCKET)
        };
        let store = OpendalStore::s3(&cfg).unwrap();
        let start = Instant::now();
        let err = store.put("k", Bytes::from_static(b"x")).await.unwrap_err();
        assert_eq!(err.kind(), ObjectErrorKind::PermissionDenied, "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    })
    .await;

    // A bucket that does not exist is a permanent error naming the bucket.
    step("missing_bucket", async {
        let store = OpendalStore::s3(&server.s3_config("no-such-bucket")).unwrap();
        let err = store.get_range("k", 0..1).await.unwrap_err();
        assert_ne!(err.kind(), ObjectErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("no-such-bucket"), "{err}");
    })
    .await;
}
