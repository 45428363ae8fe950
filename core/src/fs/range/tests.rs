//! Unit tests of the range operations: seek data/hole, punch hole, allocate, copy_range
//! (sharing blocks vs. copying bytes).

use super::*;
use crate::fs::tests::new_fs;
use crate::object::ObjectStore;

const ROOT: Caller = Caller::ROOT;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 253) as u8 ^ seed).collect()
}

async fn file(fs: &Fs, name: &[u8]) -> FileId {
    fs.create(fs.root(), name, 0o644, &ROOT, true)
        .await
        .unwrap()
        .id
}

async fn all(fs: &Fs, id: FileId) -> Vec<u8> {
    let size = fs.getattr(id).await.unwrap().size;
    fs.read(id, 0, size as u32).await.unwrap().to_vec()
}

async fn objects(o: &crate::object::MemObjectStore) -> usize {
    o.list("").await.unwrap().len()
}

#[tokio::test]
async fn seek_finds_data_and_holes_at_block_granularity() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    let f = file(&fs, b"sparse").await;
    // Data in block 0, a hole of blocks 1..20 (crossing a chunk), data in 20.
    fs.write(f, 10, b"abc").await.unwrap();
    fs.write(f, 20 * BS + 5, &pattern(100, 1)).await.unwrap();
    let size = 20 * BS + 105;
    assert_eq!(fs.seek_data(f, 0).await.unwrap(), Some(0));
    assert_eq!(fs.seek_data(f, 7).await.unwrap(), Some(7));
    // Block 0 was stored whole (the file grew past it), so it is data throughout.
    assert_eq!(fs.seek_data(f, 13).await.unwrap(), Some(13));
    assert_eq!(fs.seek_data(f, BS - 1).await.unwrap(), Some(BS - 1));
    assert_eq!(fs.seek_data(f, BS).await.unwrap(), Some(20 * BS));
    assert_eq!(fs.seek_data(f, size).await.unwrap(), None);
    assert_eq!(fs.seek_hole(f, 0).await.unwrap(), Some(BS));
    assert_eq!(fs.seek_hole(f, 100).await.unwrap(), Some(BS));
    assert_eq!(fs.seek_hole(f, 3 * BS).await.unwrap(), Some(3 * BS));
    assert_eq!(fs.seek_hole(f, 20 * BS).await.unwrap(), Some(size));
    assert_eq!(fs.seek_hole(f, size).await.unwrap(), None);
    // Inline files are all data.
    let g = file(&fs, b"small").await;
    fs.write(g, 0, b"hello").await.unwrap();
    assert_eq!(fs.seek_data(g, 2).await.unwrap(), Some(2));
    assert_eq!(fs.seek_hole(g, 2).await.unwrap(), Some(5));
}

#[tokio::test]
async fn punch_hole_zeroes_keeps_size_and_drops_whole_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    let f = file(&fs, b"f").await;
    let mut model = pattern(3 * BLOCK_SIZE + 77, 3);
    fs.write(f, 0, &model).await.unwrap();
    fs.fsync(f).await.unwrap();
    // From the middle of block 0 to the middle of block 2: block 1 leaves the manifest.
    let (a, b) = (BS / 2, 2 * BS + 10);
    fs.punch_hole(f, a, b - a).await.unwrap();
    model[a as usize..b as usize].fill(0);
    assert_eq!(fs.getattr(f).await.unwrap().size, model.len() as u64);
    assert!(all(&fs, f).await == model);
    assert_eq!(fs.seek_hole(f, 0).await.unwrap(), Some(BS));
    assert_eq!(fs.seek_data(f, BS).await.unwrap(), Some(2 * BS));
    // Past the end: nothing changes; inline files are zeroed in place.
    fs.punch_hole(f, 10 * BS, 5).await.unwrap();
    assert_eq!(fs.getattr(f).await.unwrap().size, model.len() as u64);
    let g = file(&fs, b"g").await;
    fs.write(g, 0, b"0123456789").await.unwrap();
    fs.punch_hole(g, 2, 3).await.unwrap();
    assert_eq!(all(&fs, g).await, b"01\x00\x00\x0056789");
}

#[tokio::test]
async fn allocate_extends_unless_keep_size() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    let f = file(&fs, b"f").await;
    fs.allocate(f, 0, 1000, true).await.unwrap();
    assert_eq!(fs.getattr(f).await.unwrap().size, 0);
    fs.allocate(f, 100, 5 * BS, false).await.unwrap();
    assert_eq!(fs.getattr(f).await.unwrap().size, 100 + 5 * BS);
    fs.allocate(f, 0, 10, false).await.unwrap();
    assert_eq!(fs.getattr(f).await.unwrap().size, 100 + 5 * BS);
    assert_eq!(
        fs.allocate(f, 0, 0, false).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(fs.seek_data(f, 0).await.unwrap(), None);
}

#[tokio::test]
async fn aligned_copy_shares_blocks_and_survives_source_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, objs) = new_fs(tmp.path());
    let src = file(&fs, b"src").await;
    let data = pattern(2 * BLOCK_SIZE + 1234, 5);
    fs.write(src, 0, &data).await.unwrap();
    fs.fsync(src).await.unwrap();
    let before = objects(&objs).await;
    let dst = file(&fs, b"dst").await;
    let n = fs.copy_range(src, 0, dst, 0, u64::MAX >> 20).await.unwrap();
    assert_eq!(n, data.len() as u64);
    assert_eq!(
        objects(&objs).await,
        before,
        "a shared copy writes no object"
    );
    assert!(all(&fs, dst).await == data);
    // Rewriting the source leaves the copy alone.
    fs.write(src, 5, b"changed").await.unwrap();
    fs.fsync(src).await.unwrap();
    assert!(all(&fs, dst).await == data);
    // Unlinking the source too.
    fs.unlink(fs.root(), b"src", &ROOT).await.unwrap();
    assert!(all(&fs, dst).await == data);
}

#[tokio::test]
async fn unaligned_and_partial_copies_copy_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    let src = file(&fs, b"src").await;
    let data = pattern(BLOCK_SIZE + 999, 7);
    fs.write(src, 0, &data).await.unwrap();
    let dst = file(&fs, b"dst").await;
    fs.write(dst, 0, &pattern(50, 9)).await.unwrap();
    // Unaligned offsets.
    let n = fs.copy_range(src, 3, dst, 10, 5000).await.unwrap();
    assert_eq!(n, 5000);
    let mut model = pattern(50, 9);
    model.resize(5010, 0);
    model[10..5010].copy_from_slice(&data[3..5003]);
    assert!(all(&fs, dst).await == model);
    // Past the source's end: short, then zero.
    let n = fs
        .copy_range(src, data.len() as u64 - 10, dst, 0, 100)
        .await
        .unwrap();
    assert_eq!(n, 10);
    assert_eq!(
        fs.copy_range(src, data.len() as u64, dst, 0, 100)
            .await
            .unwrap(),
        0
    );
    // Aligned into a larger destination: the partial tail block is copied, not shared, so
    // the destination's bytes after it stay.
    let big = file(&fs, b"big").await;
    let mut model = pattern(3 * BLOCK_SIZE, 11);
    fs.write(big, 0, &model).await.unwrap();
    fs.copy_range(src, 0, big, 0, data.len() as u64)
        .await
        .unwrap();
    model[..data.len()].copy_from_slice(&data);
    assert!(all(&fs, big).await == model);
    // Overlap within one file is refused.
    assert_eq!(
        fs.copy_range(src, 0, src, 10, 100)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
}
