//! The video's bytes as FFmpeg asks for them (read at a position, seek),
//! served by ranged reads of the object (`fetch(offset, len)`: an S3 `Range`
//! GET, an fs seek). A read-ahead window starts small and doubles while the
//! reads run on sequentially, so the index costs a few small ranges and one
//! group of pictures a few larger ones. `video.max_read_bytes` is enforced
//! here, the one place bytes are fetched: past it the snapshot is a 422.

use std::time::Instant;

use bytes::Bytes;

use crate::error::{Error, Result};

/// One ranged read of the object: `len` bytes from `offset` (fewer only at its end).
pub type Fetch<'a> = Box<dyn FnMut(u64, u64) -> Result<Bytes> + 'a>;

/// The first read-ahead, and the one after every jump.
pub const MIN_AHEAD: u64 = 64 * 1024;
/// The largest read-ahead, reached after four sequential ranges.
pub const MAX_AHEAD: u64 = 1024 * 1024;
/// Ranges kept for re-reads (demuxers step back a little after a seek).
const KEPT: usize = 4;

/// The most bytes the kept ranges hold.
pub const KEPT_BYTES: u64 = KEPT as u64 * MAX_AHEAD;

pub struct RangeReader<'a> {
    size: u64,
    pos: u64,
    fetch: Fetch<'a>,
    limit: u64,
    /// Bytes fetched so far, and in how many ranges.
    pub fetched: u64,
    pub ranges: u32,
    ahead: u64,
    last_end: u64,
    kept: Vec<(u64, Bytes)>,
    deadline: Option<Instant>,
    /// Why reading stopped, if it did: the snapshot's answer.
    pub failure: Option<Error>,
}

impl<'a> RangeReader<'a> {
    pub fn new(size: u64, limit: u64, deadline: Option<Instant>, fetch: Fetch<'a>) -> Self {
        RangeReader {
            size,
            pos: 0,
            fetch,
            limit,
            fetched: 0,
            ranges: 0,
            ahead: MIN_AHEAD,
            last_end: u64::MAX,
            kept: Vec::new(),
            deadline,
            failure: None,
        }
    }

    /// Bytes already read from `start` (an origin's opening range): kept for
    /// FFmpeg's reads and counted against the limit like a fetched range.
    pub fn already_read(&mut self, start: u64, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.fetched += bytes.len() as u64;
        self.ranges += 1;
        self.keep(start, bytes);
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Copy bytes from the current position into `buf`; 0 at the end.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        if let Some(n) = self.copy_kept(buf) {
            return Ok(n);
        }
        let chunk = self.fetch_at(self.pos, buf.len() as u64)?;
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        self.pos += n as u64;
        self.keep(self.pos - n as u64, chunk);
        Ok(n)
    }

    /// Move to `to`; a position past the end is refused.
    pub fn seek(&mut self, to: u64) -> Option<u64> {
        (to <= self.size).then(|| {
            self.pos = to;
            to
        })
    }

    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Has reading stopped (a failure, or the deadline)? Sets the failure.
    pub fn stopped(&mut self) -> bool {
        if self.failure.is_none() && Error::check_deadline(self.deadline).is_err() {
            self.failure = Some(Error::too_slow());
        }
        self.failure.is_some()
    }

    fn copy_kept(&mut self, buf: &mut [u8]) -> Option<usize> {
        let pos = self.pos;
        let (start, bytes) = self
            .kept
            .iter()
            .find(|(s, b)| *s <= pos && pos < s + b.len() as u64)?;
        let from = (pos - start) as usize;
        let n = (bytes.len() - from).min(buf.len());
        buf[..n].copy_from_slice(&bytes[from..from + n]);
        self.pos += n as u64;
        Some(n)
    }

    fn keep(&mut self, start: u64, bytes: Bytes) {
        if self.kept.len() == KEPT {
            self.kept.remove(0);
        }
        self.kept.push((start, bytes));
    }

    /// One range from `offset`: at least `want` bytes, more when reading on.
    fn fetch_at(&mut self, offset: u64, want: u64) -> Result<Bytes> {
        if self.stopped() {
            return Err(self.failure.clone().unwrap_or_else(Error::too_slow));
        }
        self.ahead = if offset == self.last_end {
            (self.ahead * 2).min(MAX_AHEAD)
        } else {
            MIN_AHEAD
        };
        let left = self.limit.saturating_sub(self.fetched);
        let len = want.max(self.ahead).min(self.size - offset).min(left);
        if len == 0 {
            let e = Error::unprocessable(format!(
                "the snapshot needs more than video.max_read_bytes ({} bytes) of the video",
                self.limit
            ));
            self.failure = Some(e.clone());
            return Err(e);
        }
        let bytes = match (self.fetch)(offset, len) {
            Ok(b) if !b.is_empty() => b,
            Ok(_) => Err(Error::unprocessable("the video is shorter than its size"))?,
            Err(e) => {
                self.failure = Some(e.clone());
                return Err(e);
            }
        };
        self.fetched += bytes.len() as u64;
        self.ranges += 1;
        self.last_end = offset + bytes.len() as u64;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn object(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn reads_are_served_in_growing_ranges_and_counted() {
        let data = object(5 << 20);
        let log = RefCell::new(Vec::new());
        let fetch: Fetch = Box::new(|off, len| {
            log.borrow_mut().push((off, len));
            Ok(Bytes::copy_from_slice(
                &data[off as usize..(off + len) as usize],
            ))
        });
        let mut r = RangeReader::new(data.len() as u64, u64::MAX, None, fetch);
        let mut buf = vec![0u8; 32 * 1024];
        let mut got = Vec::new();
        while got.len() < 3 << 20 {
            let n = r.read(&mut buf).expect("read");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(&got[..], &data[..got.len()]);
        let lens: Vec<u64> = log.borrow().iter().map(|&(_, l)| l).collect();
        assert_eq!(
            &lens[..5],
            &[64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20]
        );
        assert_eq!(r.fetched, lens.iter().sum::<u64>());
        // A jump starts small again; a step back inside a kept range costs nothing.
        r.seek(4 << 20);
        r.read(&mut buf).expect("read");
        assert_eq!(log.borrow().last(), Some(&(4 << 20, 64 << 10)));
        let ranges = r.ranges;
        r.seek((4 << 20) + 100);
        let n = r.read(&mut buf).expect("read");
        assert_eq!(&buf[..n], &data[(4 << 20) + 100..(4 << 20) + 100 + n]);
        assert_eq!(r.ranges, ranges);
        assert!(r.seek(data.len() as u64 + 1).is_none());
    }

    #[test]
    fn the_read_limit_is_a_422_and_never_overshot() {
        let data = object(1 << 20);
        let fetch: Fetch = Box::new(|off, len| {
            Ok(Bytes::copy_from_slice(
                &data[off as usize..(off + len) as usize],
            ))
        });
        let mut r = RangeReader::new(data.len() as u64, 100_000, None, fetch);
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        let err = loop {
            match r.read(&mut buf) {
                Ok(n) => total += n,
                Err(e) => break e,
            }
        };
        assert_eq!(total, 100_000);
        assert_eq!(r.fetched, 100_000);
        assert_eq!(err.status().as_u16(), 422);
        assert!(r.stopped());
    }

    #[test]
    fn a_failed_fetch_stops_the_reader_with_its_error() {
        let fetch: Fetch = Box::new(|_, _| Err(Error::StoreError("the store failed".into())));
        let mut r = RangeReader::new(1000, u64::MAX, None, fetch);
        let err = r.read(&mut [0u8; 10]).expect_err("fails");
        assert_eq!(err.code(), "StoreError");
        assert!(r.stopped());
        assert_eq!(r.failure.as_ref().map(Error::code), Some("StoreError"));
    }
}
