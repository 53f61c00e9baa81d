use std::time::Instant;
fn main() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(32 << 20)
        .flush_every_ms(Some(500))
        .mode(sled::Mode::HighThroughput)
        .open()
        .unwrap();
    let tree = db.open_tree("t").unwrap();
    let n = 20000u64;
    for mode in 0..6 {
        let t = Instant::now();
        for i in 0..n {
            let id = ulid::Ulid::new().to_string();
            match mode {
                0 | 3 => {
                    for j in 0..10u64 {
                        tree.insert(
                            format!("I{:07}\0{id}", (i * 7919 + j * 13) % 50000).as_bytes(),
                            &[] as &[u8],
                        )
                        .unwrap();
                    }
                }
                1 | 4 => {
                    let mut b = sled::Batch::default();
                    for j in 0..10u64 {
                        b.insert(
                            format!("I{:07}\0{id}", (i * 7919 + j * 13) % 50000).as_bytes(),
                            &[] as &[u8],
                        );
                    }
                    tree.apply_batch(b).unwrap();
                }
                _ => {
                    for j in 0..10u64 {
                        tree.insert(format!("S{j}\0{id}").as_bytes(), &[] as &[u8])
                            .unwrap();
                    }
                }
            }
        }
        println!(
            "mode {mode}: {:.1} us/10 keys",
            t.elapsed().as_secs_f64() * 1e6 / (n as f64)
        );
    }
}
