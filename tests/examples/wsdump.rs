//! Debug aid: fsck a volume and list a directory (`cargo run -p nokv-tests --example wsdump DATA PATH`).
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let vol = nokv_core::Volume::open(&nokv_core::VolumeConfig::new(&a[1])).unwrap();
    let fs = vol.fs().clone();
    let r = rt.block_on(fs.fsck()).unwrap();
    println!(
        "fsck: {:?}",
        r.violations.iter().take(5).collect::<Vec<_>>()
    );
    let id = fs.resolve(&a[2]).unwrap();
    let (es, _) = rt
        .block_on(fs.readdir(id, 0, 100000, &nokv_core::Caller::ROOT))
        .unwrap();
    println!(
        "{} entries; nlink {}",
        es.len(),
        rt.block_on(fs.getattr(id)).unwrap().nlink
    );
    for w in fs.workspaces().unwrap() {
        println!("ws {} {} base {:?}", w.id, w.path, w.base);
    }
}
