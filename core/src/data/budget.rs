//! The volume-wide budget for dirty block bytes held in memory, and a small pool of block
//! buffers.
//!
//! A write session keeps a dirty block in memory only while it holds a [`Reservation`] of
//! one whole block from the volume's [`DirtyBudget`]; without one the block goes to the
//! staging file. The reservation travels with the bytes (into the upload) and is released
//! when they are dropped, so the memory held by dirty and uploading blocks never exceeds the
//! budget (plus the one copy an abandoned, still running upload may hold, see `session`).
//!
//! Buffers whose upload finished go back to a pool of at most [`POOL_BLOCKS`] and stay
//! counted in the budget while pooled, so the budget bounds them too. Reusing them spares
//! the kernel zeroing fresh pages for every block, and keeps the memory warm.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Most block buffers kept for reuse (enough for one sequential writer's uploads in flight).
pub(crate) const POOL_BLOCKS: usize = 16;

/// A byte budget shared by every write session of a volume.
#[derive(Debug)]
pub(crate) struct DirtyBudget {
    limit: usize,
    used: AtomicUsize,
    /// Empty buffers of `block` capacity, each counted in `used`.
    pool: Mutex<Vec<Vec<u8>>>,
    block: usize,
}

impl DirtyBudget {
    /// A budget of `limit` bytes whose pooled buffers hold `block` bytes each.
    pub fn new(limit: usize, block: usize) -> Arc<Self> {
        Arc::new(DirtyBudget {
            limit,
            used: AtomicUsize::new(0),
            pool: Mutex::new(Vec::new()),
            block,
        })
    }

    /// An empty buffer of one block's capacity with its reservation: a pooled one, or a new
    /// one if the budget has room. `None` when it has not.
    pub fn block(self: &Arc<Self>) -> Option<(Vec<u8>, Reservation)> {
        if let Some(buf) = self.pool.lock().pop() {
            let res = Reservation {
                budget: Arc::clone(self),
                n: self.block,
            };
            return Some((buf, res));
        }
        let res = self.try_reserve(self.block)?;
        Some((Vec::with_capacity(self.block), res))
    }

    /// Keeps `buf` for reuse (its reservation stays counted) if the pool has room and it
    /// is a whole block's buffer; frees both otherwise.
    pub fn recycle(&self, mut buf: Vec<u8>, mut res: Reservation) {
        if buf.capacity() != self.block || res.n != self.block {
            return;
        }
        let mut pool = self.pool.lock();
        if pool.len() < POOL_BLOCKS {
            buf.clear();
            pool.push(buf);
            res.n = 0; // now counted for the pooled buffer
        }
    }

    /// `n` bytes of the budget, or `None` when that would exceed it.
    pub fn try_reserve(self: &Arc<Self>, n: usize) -> Option<Reservation> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.limit)
            })
            .ok()?;
        Some(Reservation {
            budget: Arc::clone(self),
            n,
        })
    }

    /// Bytes currently reserved.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// Bytes taken from a [`DirtyBudget`], given back on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<DirtyBudget>,
    n: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.n, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_within_the_limit_and_return_on_drop() {
        let b = DirtyBudget::new(10, 4);
        let r1 = b.try_reserve(4).unwrap();
        let r2 = b.try_reserve(6).unwrap();
        assert!(b.try_reserve(1).is_none());
        assert_eq!(b.used(), 10);
        drop(r1);
        assert_eq!(b.used(), 6);
        let r3 = b.try_reserve(4).unwrap();
        assert!(b.try_reserve(1).is_none());
        drop((r2, r3));
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn pooled_buffers_stay_counted_and_are_reused() {
        let b = DirtyBudget::new(8, 4);
        let (mut buf1, res1) = b.block().unwrap();
        let (buf2, res2) = b.block().unwrap();
        assert!(b.block().is_none(), "over the limit");
        buf1.extend_from_slice(b"abc");
        let ptr = buf1.as_ptr();
        b.recycle(buf1, res1);
        assert_eq!(b.used(), 8, "a pooled buffer is still counted");
        let (again, res) = b.block().unwrap();
        assert_eq!(
            (again.as_ptr(), again.len()),
            (ptr, 0),
            "the pooled buffer, emptied"
        );
        // A buffer that is not a whole block is not pooled, and frees its reservation.
        b.recycle(Vec::with_capacity(1), res2);
        drop(buf2);
        assert_eq!(b.used(), 4);
        drop((again, res));
        assert_eq!(b.used(), 0);
    }
}
