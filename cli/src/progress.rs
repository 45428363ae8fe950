//! Progress of long operations (import, export, gc, fsck): shared counters that the
//! operation advances, and a one-line bar on stderr that a task redraws from them.
//!
//! The counters are the only interface between an operation and whoever shows its
//! progress: in a direct run the bar reads them; through the admin socket the server
//! sends snapshots of them to the client, which copies them into its own counters and
//! draws the same bar. The bar is drawn only when stderr is a terminal; otherwise nothing
//! is printed (quiet for scripts and logs).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How often the bar is redrawn.
const REDRAW: Duration = Duration::from_millis(120);
/// Width of the bar itself, in cells.
const BAR_CELLS: usize = 28;

/// Counters of one operation. Totals stay 0 for operations that cannot know them
/// (gc, fsck); the bar then shows a spinner and the elapsed time.
#[derive(Debug, Default)]
pub struct Progress {
    files_total: AtomicU64,
    bytes_total: AtomicU64,
    files_done: AtomicU64,
    bytes_done: AtomicU64,
}

/// A copy of the counters at one moment (sent over the admin socket).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Files to process.
    pub files_total: u64,
    /// Bytes to process.
    pub bytes_total: u64,
    /// Files processed.
    pub files_done: u64,
    /// Bytes processed.
    pub bytes_done: u64,
}

impl Progress {
    /// New zeroed counters.
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress::default())
    }

    /// Adds to the totals.
    pub fn add_total(&self, files: u64, bytes: u64) {
        self.files_total.fetch_add(files, Ordering::Relaxed);
        self.bytes_total.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records bytes processed.
    pub fn add_bytes(&self, bytes: u64) {
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records one file finished.
    pub fn file_done(&self) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            files_total: self.files_total.load(Ordering::Relaxed),
            bytes_total: self.bytes_total.load(Ordering::Relaxed),
            files_done: self.files_done.load(Ordering::Relaxed),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
        }
    }

    /// Overwrites the counters with `s` (client side of the admin socket).
    pub fn set(&self, s: Snapshot) {
        self.files_total.store(s.files_total, Ordering::Relaxed);
        self.bytes_total.store(s.bytes_total, Ordering::Relaxed);
        self.files_done.store(s.files_done, Ordering::Relaxed);
        self.bytes_done.store(s.bytes_done, Ordering::Relaxed);
    }
}

/// Whether a bar should be drawn: stderr is a terminal.
pub fn wanted() -> bool {
    std::io::stderr().is_terminal()
}

/// A bar redrawn on stderr until dropped (which erases it). Does nothing when `enabled`
/// is false.
pub struct Bar {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Bar {
    /// Starts drawing `progress` labelled `label` (needs a Tokio runtime).
    pub fn start(label: &'static str, progress: Arc<Progress>, enabled: bool) -> Bar {
        if !enabled {
            return Bar { task: None };
        }
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(REDRAW);
            let mut frame = 0usize;
            loop {
                tick.tick().await;
                let line = render(label, progress.snapshot(), started.elapsed(), frame);
                frame += 1;
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K{line}");
                let _ = err.flush();
            }
        });
        Bar { task: Some(task) }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

/// One frame of the bar.
pub fn render(label: &str, s: Snapshot, elapsed: Duration, frame: usize) -> String {
    let secs = elapsed.as_secs();
    if s.files_total == 0 && s.bytes_total == 0 {
        const SPIN: [char; 4] = ['|', '/', '-', '\\'];
        return format!("{label} {} {secs}s", SPIN[frame % SPIN.len()]);
    }
    let ratio = if s.bytes_total > 0 {
        s.bytes_done as f64 / s.bytes_total as f64
    } else {
        s.files_done as f64 / s.files_total.max(1) as f64
    }
    .clamp(0.0, 1.0);
    let full = (ratio * BAR_CELLS as f64).round() as usize;
    format!(
        "{label} [{}{}] {:>3}% {}/{} files, {}/{} {secs}s",
        "#".repeat(full),
        "-".repeat(BAR_CELLS - full),
        (ratio * 100.0).floor() as u32,
        s.files_done,
        s.files_total,
        human_bytes(s.bytes_done),
        human_bytes(s.bytes_total),
    )
}

/// `1536` -> `1.5 KiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_shows_fraction_counts_and_sizes() {
        let s = Snapshot {
            files_total: 4,
            bytes_total: 2048,
            files_done: 1,
            bytes_done: 1024,
        };
        let line = render("import", s, Duration::from_secs(3), 0);
        assert!(
            line.starts_with(
                "import [##############--------------]  50% 1/4 files, 1.0 KiB/2.0 KiB 3s"
            ),
            "{line}"
        );
    }

    #[test]
    fn unknown_totals_spin() {
        let line = render("gc", Snapshot::default(), Duration::from_secs(2), 1);
        assert_eq!(line, "gc / 2s");
    }

    #[test]
    fn counters_round_trip() {
        let p = Progress::new();
        p.add_total(2, 10);
        p.add_bytes(4);
        p.file_done();
        let s = p.snapshot();
        assert_eq!(
            (s.files_total, s.bytes_total, s.files_done, s.bytes_done),
            (2, 10, 1, 4)
        );
        let q = Progress::new();
        q.set(s);
        assert_eq!(q.snapshot(), s);
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }
}
