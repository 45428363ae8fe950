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

/// The value of env var `name` parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: impl FnOnce() -> T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(default)
}

/// A seed from the clock (for a run nobody asked to replay).
pub fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// Starts a worker (`cmd`, its stdout captured), waits up to `ready_within` for its `READY`
/// line, lets it run for `run`, SIGKILLs it and returns every line it printed after `READY`.
pub fn run_until_killed(
    cmd: &mut std::process::Command,
    ready_within: std::time::Duration,
    run: std::time::Duration,
) -> Vec<String> {
    use std::io::BufRead;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start the worker");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    match rx.recv_timeout(ready_within) {
        Ok(l) if l == "READY" => {}
        Ok(l) => panic!("unexpected line before READY: {l}"),
        Err(_) => panic!("worker did not start within {ready_within:?}"),
    }
    std::thread::sleep(run);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().expect("reap the worker");
    reader.join().expect("reader thread");
    rx.try_iter().collect()
}
