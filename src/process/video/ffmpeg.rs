//! The only file that calls FFmpeg (through `shim.c`): open a video over a
//! [`RangeReader`], describe it, decode one frame, hand it out as RGB. The
//! reader is FFmpeg's I/O and its stop signal (the deadline, the read limit,
//! a failed read, a refused reservation); the caller's `reserve` is asked for
//! each decoder picture's bytes before the live pictures pass what it granted.
//! No panic crosses the C boundary.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::reader::RangeReader;
use crate::error::{Error, Result};

#[repr(C)]
struct PmVideo {
    _private: [u8; 0],
}

/// What the container says of the video stream.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Info {
    pub width: c_int,
    pub height: c_int,
    /// -1: unknown.
    pub duration_ms: i64,
    /// Clockwise degrees that make the picture upright: 0, 90, 180, 270.
    pub rotation: c_int,
    /// 1: H.264, 2: H.265.
    pub codec: c_int,
}

type ReadFn = extern "C" fn(*mut c_void, *mut u8, c_int) -> c_int;
type SeekFn = extern "C" fn(*mut c_void, i64, c_int) -> i64;
type StopFn = extern "C" fn(*mut c_void) -> c_int;
type GrowFn = extern "C" fn(*mut c_void, i64) -> c_int;

extern "C" {
    fn pm_init(max_alloc: usize);
    fn pm_open(
        out: *mut *mut PmVideo,
        opaque: *mut c_void,
        read: ReadFn,
        seek: SeekFn,
        stop: StopFn,
        grow: GrowFn,
        max_pixels: i64,
    ) -> c_int;
    fn pm_info_of(v: *const PmVideo, info: *mut Info);
    fn pm_decode(v: *mut PmVideo, t_ms: i64, fast: c_int) -> c_int;
    fn pm_frame_size(v: *const PmVideo, w: *mut c_int, h: *mut c_int);
    fn pm_frame_rgb(v: *const PmVideo, dst: *mut u8, stride: c_int) -> c_int;
    fn pm_close(v: *mut PmVideo);
}

const PM_NOT_VIDEO: c_int = -1;
const PM_CODEC: c_int = -2;
const PM_TOO_LARGE: c_int = -3;
const PM_NO_FRAME: c_int = -4;
const PM_STOPPED: c_int = -5;

// FFmpeg's error tags (libavutil/error.h) and avio's seek flags (avio.h).
const AVERROR_EOF: c_int = -0x2046_4F45;
const AVERROR_EXIT: c_int = -0x5449_5845;
const AVSEEK_SIZE: c_int = 0x10000;
const AVSEEK_FORCE: c_int = 0x20000;

/// The largest single allocation FFmpeg may make (`av_max_alloc`): a frame
/// plane of 16384x16384 fits; an index that claims 10^9 samples does not.
const MAX_ALLOC: usize = 512 << 20;

fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: sets one process-wide integer in libavutil.
    ONCE.call_once(|| unsafe { pm_init(MAX_ALLOC) });
}

/// What FFmpeg's callbacks reach: the reader, and the memory reservation
/// (with what was reserved ahead for pictures and not yet asked for).
struct Io<'a> {
    reader: RangeReader<'a>,
    reserve: &'a mut dyn FnMut(u64) -> Result<()>,
    prepaid: u64,
}

/// The `Io` behind a callback's `opaque`.
///
/// SAFETY (for callers): `opaque` is the `Io` boxed by `Video::open`, alive
/// until `pm_close`, and FFmpeg calls back on this thread only.
unsafe fn io<'x>(opaque: *mut c_void) -> &'x mut Io<'x> {
    &mut *(opaque as *mut Io)
}

extern "C" fn read_cb(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
    // SAFETY: see `io`; `buf` holds `size` bytes (avio's contract).
    let r = unsafe { &mut io(opaque).reader };
    let out = unsafe { std::slice::from_raw_parts_mut(buf, size.max(0) as usize) };
    match catch_unwind(AssertUnwindSafe(|| r.read(out))) {
        Ok(Ok(0)) => AVERROR_EOF,
        Ok(Ok(n)) => n as c_int,
        Ok(Err(_)) => AVERROR_EXIT,
        Err(_) => {
            r.failure = Some(Error::Internal("the video reader panicked".into()));
            AVERROR_EXIT
        }
    }
}

extern "C" fn seek_cb(opaque: *mut c_void, offset: i64, whence: c_int) -> i64 {
    // SAFETY: see `io`.
    let r = unsafe { &mut io(opaque).reader };
    if whence & AVSEEK_SIZE != 0 {
        return r.size() as i64;
    }
    let base = match whence & !AVSEEK_FORCE {
        libc::SEEK_SET => 0,
        libc::SEEK_CUR => r.position() as i64,
        libc::SEEK_END => r.size() as i64,
        _ => return -(libc::EINVAL as i64),
    };
    match base.checked_add(offset) {
        Some(to) if to >= 0 => r
            .seek(to as u64)
            .map_or(-(libc::EINVAL as i64), |p| p as i64),
        _ => -(libc::EINVAL as i64),
    }
}

extern "C" fn stop_cb(opaque: *mut c_void) -> c_int {
    // SAFETY: see `io`.
    let r = unsafe { &mut io(opaque).reader };
    catch_unwind(AssertUnwindSafe(|| r.stopped() as c_int)).unwrap_or(1)
}

/// More memory for the decoder's pictures; refused, the run's failure is
/// set and the stop callback ends the run with it.
extern "C" fn grow_cb(opaque: *mut c_void, bytes: i64) -> c_int {
    // SAFETY: see `io`.
    let io = unsafe { io(opaque) };
    let bytes = bytes.max(0) as u64;
    let prepaid = bytes.min(io.prepaid);
    io.prepaid -= prepaid;
    let rest = bytes - prepaid;
    let asked = match rest {
        0 => Ok(Ok(())),
        _ => catch_unwind(AssertUnwindSafe(|| (io.reserve)(rest))),
    };
    let failure = match asked {
        Ok(Ok(())) => return 0,
        Ok(Err(e)) => e,
        Err(_) => Error::Internal("the memory reservation panicked".into()),
    };
    io.reader.failure.get_or_insert(failure);
    1
}

/// One open video: the demuxer and decoder over its reader.
pub struct Video<'a> {
    ptr: *mut PmVideo,
    /// The `Io` the callbacks reach (`Box::into_raw`), owned here and freed
    /// after `pm_close`. A raw pointer, not a `Box`: moving the `Video`
    /// then asserts no unique borrow that FFmpeg's copy of it aliases.
    io: *mut Io<'a>,
}

impl Drop for Video<'_> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `pm_open` and is closed once; after it no
        // callback runs, and `io` came from `Box::into_raw` in `open`.
        unsafe {
            pm_close(self.ptr);
            drop(Box::from_raw(self.io));
        }
    }
}

impl<'a> Video<'a> {
    /// Open the container and its video stream's decoder (no frame decoded).
    /// `reserve` is asked for the decoder's pictures as they are made.
    pub fn open(
        reader: RangeReader<'a>,
        reserve: &'a mut dyn FnMut(u64) -> Result<()>,
        max_pixels: u64,
    ) -> Result<Video<'a>> {
        init();
        let io = Box::into_raw(Box::new(Io {
            reader,
            reserve,
            prepaid: 0,
        }));
        let mut ptr = std::ptr::null_mut();
        let max = i64::try_from(max_pixels).unwrap_or(i64::MAX);
        // SAFETY: the callbacks get `io`, which lives until the `Video` is
        // dropped (after `pm_close`), or is freed below once `pm_open` has
        // closed what it opened.
        let r = unsafe { pm_open(&mut ptr, io.cast(), read_cb, seek_cb, stop_cb, grow_cb, max) };
        if r != 0 {
            // SAFETY: as above; nothing refers to `io` any more.
            let mut io = unsafe { Box::from_raw(io) };
            return Err(failure(r, &mut io.reader));
        }
        Ok(Video { ptr, io })
    }

    fn io(&mut self) -> &mut Io<'a> {
        // SAFETY: `io` is alive while `self` is; FFmpeg's callbacks use it
        // only inside calls made through `&mut self`.
        unsafe { &mut *self.io }
    }

    /// Reserve `bytes` for this snapshot beside its pictures, and `pictures`
    /// ahead for the decoder's first pictures (one reservation, which may
    /// wait); what the decoder needs past them it asks for as it goes.
    pub fn reserve_ahead(&mut self, bytes: u64, pictures: u64) -> Result<()> {
        let io = self.io();
        (io.reserve)(bytes + pictures)?;
        io.prepaid = pictures;
        Ok(())
    }

    pub fn info(&self) -> Info {
        let mut info = Info::default();
        // SAFETY: `ptr` is open; `info` is a plain struct of the shim's layout.
        unsafe { pm_info_of(self.ptr, &mut info) };
        info
    }

    /// Decode the frame shown at `t_ms` (`fast`: the keyframe at or before it).
    pub fn decode(&mut self, t_ms: u64, fast: bool) -> Result<(u32, u32)> {
        let t = i64::try_from(t_ms).unwrap_or(i64::MAX);
        // SAFETY: `ptr` is open.
        let r = unsafe { pm_decode(self.ptr, t, fast as c_int) };
        if r != 0 {
            return Err(failure(r, &mut self.io().reader));
        }
        let (mut w, mut h) = (0, 0);
        // SAFETY: a frame was decoded.
        unsafe { pm_frame_size(self.ptr, &mut w, &mut h) };
        Ok((w as u32, h as u32))
    }

    /// The decoded frame as packed RGB, `w` x `h` (from `decode`).
    pub fn rgb(&self, (w, h): (u32, u32)) -> Result<Vec<u8>> {
        let stride = w as usize * 3;
        let mut out = vec![0u8; stride * h as usize];
        // SAFETY: `out` holds `h` rows of `stride` bytes, the decoded frame's size.
        let r = unsafe { pm_frame_rgb(self.ptr, out.as_mut_ptr(), stride as c_int) };
        match r {
            0 => Ok(out),
            _ => Err(Error::unprocessable(
                "the video's frame could not be converted",
            )),
        }
    }

    /// Bytes read from the object so far, and in how many ranges.
    pub fn read(&self) -> (u64, u32) {
        // SAFETY: as in `io`; a shared read between calls into FFmpeg.
        let reader = unsafe { &(*self.io).reader };
        (reader.fetched, reader.ranges)
    }
}

/// The error of a failed call: the reader's own failure first (a store
/// error, the read limit, the deadline), else what FFmpeg said.
fn failure(code: c_int, reader: &mut RangeReader) -> Error {
    if let Some(e) = reader.failure.take() {
        return e;
    }
    match code {
        PM_NOT_VIDEO => Error::unprocessable(
            "the object is not an MP4, MOV or Matroska video, or its index or parameters are broken",
        ),
        PM_CODEC => Error::unprocessable("only H.264 and H.265 videos can be snapshotted"),
        PM_TOO_LARGE => Error::unprocessable(
            "the video's pictures have more pixels than process.max_source_pixels",
        ),
        PM_NO_FRAME => Error::unprocessable("no frame of the video could be decoded"),
        PM_STOPPED => Error::too_slow(),
        _ => Error::unprocessable("the video needs more memory than allowed"),
    }
}
