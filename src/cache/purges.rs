//! Purges as work in flight sees them: each purge of an original takes the
//! next number, work takes a [`Ticket`] when it starts and publishes nothing
//! if its original was purged since.

use std::sync::Arc;
use std::time::Duration;

/// The purges of originals, so that work which started before a purge does
/// not bring the purged derivatives back (into L1 or the bucket) when it ends.
/// Each purge takes the next number; work takes a [`Ticket`] when it starts.
pub struct Purges {
    seq: std::sync::atomic::AtomicU64,
    /// Original key → the number of its last purge, kept longer than any work lasts.
    last: moka::sync::Cache<String, u64>,
}

impl Purges {
    pub fn new(remember: Duration) -> Arc<Purges> {
        Arc::new(Purges {
            seq: std::sync::atomic::AtomicU64::new(0),
            last: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(remember.max(Duration::from_secs(1)))
                .build(),
        })
    }

    /// The sequence now: work stamps what it makes with it.
    pub fn current(&self) -> u64 {
        self.seq.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Was `key` purged after the moment `made` (a [`Purges::current`])?
    pub fn purged_since(&self, key: &str, made: u64) -> bool {
        self.last.get(key).is_some_and(|n| n > made)
    }

    pub fn purge(&self, key: &str) {
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        self.last.insert(key.to_string(), n);
    }

    /// Taken when work on derivatives of `key` starts.
    pub fn ticket(self: &Arc<Self>, key: &str) -> Ticket {
        Ticket {
            purges: self.clone(),
            key: key.to_string(),
            seq: self.seq.load(std::sync::atomic::Ordering::SeqCst),
        }
    }
}

/// Work's proof of when it started: still valid unless its original was purged since.
#[derive(Clone)]
pub struct Ticket {
    purges: Arc<Purges>,
    key: String,
    seq: u64,
}

impl Ticket {
    pub fn still_valid(&self) -> bool {
        !self.purges.purged_since(&self.key, self.seq)
    }

    /// The sequence when the work started (what its results are stamped with).
    pub fn seq(&self) -> u64 {
        self.seq
    }
}
