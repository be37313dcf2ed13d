//! The memory budget (`process.memory_budget`): one pool of bytes for what
//! requests hold while they wait and work — downloaded sources, the pixels a
//! plan will decode, encoded outputs, mirror spools. A request reserves its
//! share *before* it downloads or takes a libvips slot, waits (bounded by
//! `process.timeout`) when the budget is spent, then gets `503 Busy`. A request
//! that could never fit is refused at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};

/// Budget units are KiB (a semaphore counts `u32` permits at a time).
const UNIT: u64 = 1024;

pub struct Budget {
    slots: Arc<Semaphore>,
    total: u64,
    wait: Duration,
    reserved: prometheus::IntGauge,
}

/// Bytes held from the budget until dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
    bytes: u64,
    reserved: prometheus::IntGauge,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.reserved.sub(self.bytes as i64);
    }
}

impl Budget {
    pub fn new(total: u64, wait: Duration, reserved: prometheus::IntGauge) -> Budget {
        let units = (total / UNIT).clamp(1, u32::MAX as u64) as usize;
        Budget {
            slots: Arc::new(Semaphore::new(units)),
            total: units as u64 * UNIT,
            wait,
            reserved,
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// What a reservation of `bytes` takes from the budget (whole units).
    pub fn charged(bytes: u64) -> u64 {
        bytes.div_ceil(UNIT).max(1) * UNIT
    }

    /// Can `bytes` ever fit? More than the whole budget: refused (422), for
    /// `what` (for messages).
    pub fn fits(&self, bytes: u64, what: &str) -> Result<()> {
        if Budget::charged(bytes) > self.total {
            return Err(Error::unprocessable(format!(
                "{what} needs about {} MiB, more than process.memory_budget ({} MiB)",
                bytes >> 20,
                self.total >> 20
            )));
        }
        Ok(())
    }

    /// Reserve `bytes` at once, or `Busy` without waiting: for a request that
    /// already holds part of the budget, so that two of them never wait on
    /// each other.
    pub fn try_reserve(&self, bytes: u64, what: &str) -> Result<Reservation> {
        self.fits(bytes, what)?;
        let units = bytes.div_ceil(UNIT).max(1);
        let permit = self
            .slots
            .clone()
            .try_acquire_many_owned(units as u32)
            .map_err(|_| Error::Busy("the memory budget is spent; retry shortly".into()))?;
        Ok(self.held(permit, units * UNIT))
    }

    fn held(&self, permit: OwnedSemaphorePermit, bytes: u64) -> Reservation {
        self.reserved.add(bytes as i64);
        Reservation {
            _permit: permit,
            bytes,
            reserved: self.reserved.clone(),
        }
    }

    /// Reserve `bytes` for `what` (for messages): at once if free, else wait up
    /// to the budget's wait, then `Busy`. More than the whole budget: refused.
    pub async fn reserve(&self, bytes: u64, what: &str) -> Result<Reservation> {
        self.fits(bytes, what)?;
        let units = bytes.div_ceil(UNIT).max(1);
        let n = units as u32;
        let permit = match self.slots.clone().try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(_) => {
                match tokio::time::timeout(self.wait, self.slots.clone().acquire_many_owned(n))
                    .await
                {
                    Ok(Ok(p)) => p,
                    Ok(Err(_)) => {
                        return Err(Error::Internal("the memory budget is closed".into()))
                    }
                    Err(_) => {
                        return Err(Error::Busy(
                            "the memory budget is spent; retry shortly".into(),
                        ))
                    }
                }
            }
        };
        Ok(self.held(permit, units * UNIT))
    }
}

/// The budget `process.memory_budget = "auto"` resolves to: half the memory
/// this process may use — the cgroup's limit (v2 `memory.max`, v1
/// `memory.limit_in_bytes`) when there is one, else physical memory — and at
/// least 256 MiB.
pub fn auto_budget() -> u64 {
    let limit = cgroup_limit().or_else(physical_memory).unwrap_or(2 << 30);
    (limit / 2).max(256 << 20)
}

fn cgroup_limit() -> Option<u64> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let v2 = read("/sys/fs/cgroup/memory.max").and_then(|s| s.trim().parse::<u64>().ok());
    let v1 = read("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        .and_then(|s| s.trim().parse::<u64>().ok())
        // v1 says "no limit" with a number near 2^63.
        .filter(|&n| n < (1 << 60));
    v2.or(v1)
}

fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What processing a `width`x`height` source into `out` pixels holds at its
/// peak: the decoded pixels after shrink-on-load (4 bytes each, twice for the
/// copy some steps need), the output's pixels and its encoding.
pub fn processing_bytes(decoded_pixels: u64, output_pixels: u64) -> u64 {
    decoded_pixels * 4 * 2 + output_pixels * 4 * 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge() -> prometheus::IntGauge {
        prometheus::IntGauge::new("g", "g").expect("gauge")
    }

    #[tokio::test]
    async fn reserve_wait_release() {
        let g = gauge();
        let b = Budget::new(10 << 20, Duration::from_millis(50), g.clone());
        let a = b.reserve(6 << 20, "a").await.expect("fits");
        assert_eq!(g.get(), 6 << 20);
        // Does not fit next to `a`: waits, then Busy.
        let e = b.reserve(6 << 20, "b").await.expect_err("busy");
        assert_eq!(e.status().as_u16(), 503);
        drop(a);
        assert_eq!(g.get(), 0);
        let _b = b.reserve(6 << 20, "b").await.expect("fits after release");
        // More than the whole budget: refused at once.
        let e = b.reserve(11 << 20, "huge").await.expect_err("never fits");
        assert_eq!(e.status().as_u16(), 422);
    }

    /// `try_reserve` never waits: a request that holds part of the budget
    /// and asks for more is refused at once when it is spent (so two such
    /// requests cannot wait on each other), even with a long wait set.
    #[tokio::test]
    async fn try_reserve_does_not_wait() {
        let g = gauge();
        let b = Budget::new(10 << 20, Duration::from_secs(60), g.clone());
        let a = b.reserve(6 << 20, "a").await.expect("fits");
        let started = std::time::Instant::now();
        let e = b.try_reserve(6 << 20, "more").expect_err("spent");
        assert_eq!(e.status().as_u16(), 503);
        assert!(started.elapsed() < Duration::from_secs(1));
        let more = b.try_reserve(4 << 20, "more").expect("fits beside a");
        assert_eq!(g.get(), 10 << 20);
        drop((a, more));
        assert_eq!(g.get(), 0);
        let e = b.try_reserve(11 << 20, "huge").expect_err("never fits");
        assert_eq!(e.status().as_u16(), 422);
        assert_eq!(Budget::charged(1), 1024);
        assert_eq!(Budget::charged(2048), 2048);
    }

    #[test]
    fn auto_is_a_share_of_real_memory() {
        let a = auto_budget();
        assert!(a >= 256 << 20);
        assert!(a <= physical_memory().unwrap_or(u64::MAX));
    }
}
