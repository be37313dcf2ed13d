//! The thin, safe edge around the `libvips` crate (see ../shared/notes/libvips.md):
//! one `VipsApp` per process, the global error buffer read right after a failure,
//! images that cannot be cloned (the crate's `Clone` double-frees).
//! The crate's option structs whose `Default` holds a `VipsInterpolate` (rotate,
//! affine, mapim, similarity) wrap libvips' *static* interpolator and unref it
//! on drop: write every field with an interpolator of our own (`steps::rotate`).

use std::ffi::CStr;
use std::sync::OnceLock;

use libvips::{VipsApp, VipsImage};

use crate::error::{Error, Result};

static APP: OnceLock<Option<VipsApp>> = OnceLock::new();

/// Start libvips once. Safe to call from any thread, any number of times.
pub fn init() -> Result<()> {
    let app = APP.get_or_init(|| {
        let app = VipsApp::new("pixmirror", false).ok()?;
        // One libvips thread per pipeline: concurrency comes from our bounded pool.
        app.concurrency_set(1);
        // No operation cache: every request is different, and it would hold memory.
        app.cache_set_max(0);
        app.cache_set_max_mem(0);
        // Refuse the loaders libvips marks unsafe for untrusted input (magick, pdf, ...).
        unsafe { libvips::bindings::vips_block_untrusted_set(1) };
        Some(app)
    });
    if app.is_some() {
        Ok(())
    } else {
        Err(Error::Internal("libvips failed to start".into()))
    }
}

/// The libvips version string, for logs.
pub fn version() -> String {
    APP.get()
        .and_then(|a| a.as_ref())
        .and_then(|a| a.version_string().ok().map(str::to_string))
        .unwrap_or_default()
}

/// Take (and clear) libvips' error buffer: the first line, trimmed, for messages.
pub fn take_error() -> String {
    unsafe {
        let p = libvips::bindings::vips_error_buffer();
        let s = if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        };
        libvips::bindings::vips_error_clear();
        s.lines().next().unwrap_or("").trim().to_string()
    }
}

/// An image that owns its libvips object. Deliberately not `Clone`.
pub struct Img(VipsImage);

impl Img {
    pub fn new(i: VipsImage) -> Img {
        Img(i)
    }
    pub fn get(&self) -> &VipsImage {
        &self.0
    }
    pub fn into_inner(self) -> VipsImage {
        self.0
    }
    pub fn width(&self) -> u32 {
        self.0.get_width().max(0) as u32
    }
    pub fn height(&self) -> u32 {
        self.0.get_height().max(0) as u32
    }
    pub fn bands(&self) -> i32 {
        self.0.get_bands()
    }
    pub fn has_alpha(&self) -> bool {
        let b = self.0.get_bands();
        b == 2 || b == 4
    }
}

/// Map a failed libvips call on the source to 422, with libvips' reason.
pub fn decode_err(what: &str) -> Error {
    let why = take_error();
    if why.is_empty() {
        Error::unprocessable(format!("{what}: the source is not a decodable image"))
    } else {
        Error::unprocessable(format!("{what}: {why}"))
    }
}

/// Wrap a libvips result from an operation of a step.
pub fn op(step: &str, r: std::result::Result<VipsImage, libvips::error::Error>) -> Result<Img> {
    r.map(Img).map_err(|_| decode_err(step))
}
