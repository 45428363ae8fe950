//! Shared set-up of the property tests: a seeded proptest runner.

use proptest::test_runner::{
    Config, FileFailurePersistence, RngAlgorithm, RngSeed, TestRng, TestRunner,
};

/// A runner seeded from env var `seed_var` (or the clock), running `cases_var` cases
/// (default `default_cases`), persisting failures to `regressions`. Returns it and the seed.
pub fn runner(
    seed_var: &str,
    cases_var: &str,
    default_cases: u32,
    regressions: &'static str,
) -> (TestRunner, u64) {
    let seed: u64 = std::env::var(seed_var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let cases: u32 = std::env::var(cases_var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_cases);
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(
            &(seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(i as u64))
            .to_le_bytes(),
        );
    }
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    (TestRunner::new_with_rng(config, rng), seed)
}
