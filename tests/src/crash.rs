//! Shared pieces of the crash test and its worker: a tiny deterministic RNG and file
//! contents derived from a seed, so the checker can recompute what the worker wrote.

/// xorshift64* — deterministic, dependency-free.
pub struct Rng(pub u64);

impl Rng {
    /// Next random value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A file size: mostly small (inline), sometimes several blocks.
    pub fn size(&mut self) -> u64 {
        match self.below(10) {
            0..=5 => self.below(6000),
            6..=8 => self.below(600_000),
            _ => 4 * 1024 * 1024 + self.below(5 * 1024 * 1024),
        }
    }
}

/// The content of a file written with `seed` and `len`.
pub fn content(seed: u64, len: u64) -> Vec<u8> {
    let mut r = Rng(seed ^ 0x9E37_79B9_7F4A_7C15);
    let mut v = Vec::with_capacity(len as usize);
    while (v.len() as u64) < len {
        v.extend_from_slice(&r.next_u64().to_le_bytes());
    }
    v.truncate(len as usize);
    v
}
