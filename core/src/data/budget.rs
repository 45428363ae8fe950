//! The volume-wide budget for dirty block bytes held in memory.
//!
//! A write session keeps a dirty block in memory only while it holds a [`Reservation`] of
//! one whole block from the volume's [`DirtyBudget`]; without one the block goes to the
//! staging file. The reservation travels with the bytes (into the upload) and is released
//! when they are dropped, so the memory held by dirty and uploading blocks never exceeds the
//! budget (plus the one copy an abandoned, still running upload may hold, see `session`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A byte budget shared by every write session of a volume.
#[derive(Debug)]
pub(crate) struct DirtyBudget {
    limit: usize,
    used: AtomicUsize,
}

impl DirtyBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(DirtyBudget {
            limit,
            used: AtomicUsize::new(0),
        })
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
        let b = DirtyBudget::new(10);
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
}
