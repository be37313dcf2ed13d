//! Video snapshots (`video/snapshot`): one frame of an H.264 or H.265 video
//! in MP4/MOV or Matroska, decoded by FFmpeg's libraries over ranged reads
//! of the object, then sized, turned and encoded by the engine like any
//! image. Blocking and CPU-bound: it runs in the bounded blocking pool.
//!
//! - `reader`: the object's bytes as ranged reads with read-ahead; the read
//!   limit (`video.max_read_bytes`).
//! - `ffmpeg`: the only file that calls FFmpeg (`shim.c`, the one C file).
//!
//! Depends on `plan` and `engine`; knows nothing of HTTP or storage (the
//! caller's `Fetch` does the I/O).

mod ffmpeg;
pub mod reader;

pub use ffmpeg::Info;
pub use reader::{Fetch, RangeReader};

use crate::error::Result;
use crate::process::engine::pipeline::{self, Options, Output};
use crate::process::plan::{turned, Snapshot};

/// A snapshot and what it cost.
pub struct Snapped {
    pub output: Output,
    pub info: Info,
    /// Bytes read from the object, and in how many ranges.
    pub read_bytes: u64,
    pub ranges: u32,
}

/// Bytes a snapshot of `pixels`-pixel pictures holds beside the decoder's
/// pictures (which the decoder reserves one by one as it makes them, as
/// many as the stream's parameters keep): the frame's RGB copy, the
/// engine's copy of it, and the reader's kept ranges.
pub fn frame_bytes(pixels: u64) -> u64 {
    pixels * (3 + 3) + reader::KEPT_BYTES
}

/// The pictures reserved ahead, before the decoder asks: the references a
/// level allows at HD sizes and the one being made (8), as the decoder
/// counts them for 8-bit 4:2:0 (planes 1.5 B/px, tables 1 B/px). A stream
/// that keeps more, or larger samples, asks for the rest as it goes.
pub fn usual_pictures(pixels: u64) -> u64 {
    8 * pixels * 5 / 2
}

/// One snapshot: open the video, check the request against its size, take
/// the memory (`reserve`: the frame's copies before anything is decoded,
/// then each decoder picture as it is made), decode the frame at `t`, hand
/// it to the engine.
pub fn snapshot(
    reader: RangeReader,
    snap: &Snapshot,
    opts: &Options,
    reserve: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<Snapped> {
    let mut video = ffmpeg::Video::open(reader, reserve, opts.max_source_pixels)?;
    let info = video.info();
    let coded = (info.width as u32, info.height as u32);
    let turn = snap.turn_degrees(info.rotation as u32, coded);
    let to = snap.size(turned(coded, turn))?;
    let pixels = coded.0 as u64 * coded.1 as u64;
    video.reserve_ahead(frame_bytes(pixels), usual_pictures(pixels))?;
    let frame = video.decode(snap.t_ms, snap.fast)?;
    let rgb = video.rgb(frame)?;
    let (read_bytes, ranges) = video.read();
    drop(video);
    // The decoded picture may differ from the container's (cropping, a new
    // sequence header): sized from what was decoded where the request allows.
    let to = snap.size(turned(frame, turn)).unwrap_or(to);
    let output = pipeline::run_frame(&rgb, frame, turn, to, snap.format, opts)?;
    Ok(Snapped {
        output,
        info,
        read_bytes,
        ranges,
    })
}
