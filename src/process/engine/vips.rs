//! The thin, safe edge around the `libvips` crate (see ../shared/notes/libvips.md):
//! one `VipsApp` per process, the global error buffer read right after a failure,
//! images that cannot be cloned (the crate's `Clone` double-frees).
//! The crate's option structs whose `Default` holds a `VipsInterpolate` (rotate,
//! affine, mapim, similarity) wrap libvips' *static* interpolator and unref it
//! on drop: write every field with an interpolator of our own (`ops::rotate`).

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
        // ... which include JPEG XL both ways. Saving encodes our own decoded
        // pixels, never input bytes: allow the saver only (JXL sources stay refused).
        unsafe {
            libvips::bindings::vips_operation_block_set(c"VipsForeignSaveJxl".as_ptr(), 0);
        }
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

/// How many libvips objects are alive in the whole process. libvips keeps
/// every live object in a global table, so a leaked image stays reachable and
/// LeakSanitizer cannot see it; counting the table can (tests/leaks.rs and
/// the pipeline fuzz target compare it before and after a run).
pub fn live_objects() -> usize {
    unsafe extern "C" fn count(
        _item: *mut std::ffi::c_void,
        a: *mut std::ffi::c_void,
        _b: *mut std::ffi::c_void,
    ) -> *mut std::ffi::c_void {
        // SAFETY: `a` is the `usize` passed below, alive for the whole map.
        unsafe { *(a as *mut usize) += 1 };
        std::ptr::null_mut()
    }
    let mut n = 0usize;
    // SAFETY: vips_object_map walks libvips' table under its own lock and
    // calls `count` with our pointer; nothing is kept past the call.
    unsafe {
        libvips::bindings::vips_object_map(
            Some(count),
            &mut n as *mut usize as *mut std::ffi::c_void,
            std::ptr::null_mut(),
        );
    }
    n
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

/// A blob field of the image's metadata (`icc-profile-data`), copied out.
pub fn get_blob(img: &Img, name: &CStr) -> Option<Vec<u8>> {
    let mut data: *const std::os::raw::c_void = std::ptr::null();
    let mut len: libvips::bindings::size_t = 0;
    // SAFETY: a live image, a NUL-terminated name, out-pointers to our stack;
    // the blob stays owned by the image and is copied before it can go.
    let r = unsafe {
        libvips::bindings::vips_image_get_blob(raw(img.get()), name.as_ptr(), &mut data, &mut len)
    };
    if r != 0 || data.is_null() {
        let _ = take_error();
        return None;
    }
    // SAFETY: libvips returned `len` readable bytes at `data`.
    Some(unsafe { std::slice::from_raw_parts(data as *const u8, len as usize) }.to_vec())
}

/// An integer field of the image's metadata (`page-height`, `loop`), if set.
pub fn get_int(img: &VipsImage, name: &CStr) -> Option<i32> {
    let mut v: std::os::raw::c_int = 0;
    // SAFETY: a live image, a NUL-terminated name, an out-pointer to our stack.
    let r = unsafe { libvips::bindings::vips_image_get_int(raw(img), name.as_ptr(), &mut v) };
    if r == 0 {
        Some(v)
    } else {
        let _ = take_error();
        None
    }
}

/// An int-array field of the image's metadata (`delay`), copied out.
pub fn get_array_int(img: &VipsImage, name: &CStr) -> Option<Vec<i32>> {
    let mut p: *mut std::os::raw::c_int = std::ptr::null_mut();
    let mut n: std::os::raw::c_int = 0;
    // SAFETY: on success `p` points at `n` ints owned by the image, which we
    // copy before the image can change or go.
    unsafe {
        if libvips::bindings::vips_image_get_array_int(raw(img), name.as_ptr(), &mut p, &mut n) != 0
            || p.is_null()
        {
            let _ = take_error();
            return None;
        }
        Some(std::slice::from_raw_parts(p, n.max(0) as usize).to_vec())
    }
}

/// Set an integer field. `img` must be an image no one else holds yet (the
/// fresh output of `ops::copy`): libvips images are shared once they are used.
pub fn set_int(img: &Img, name: &CStr, v: i32) {
    // SAFETY: a live image that only we hold; libvips copies the name.
    unsafe { libvips::bindings::vips_image_set_int(raw(&img.0), name.as_ptr(), v) }
}

/// Say how the bands of a fresh image are to be read (sRGB, grey). Same rule
/// as [`set_int`]: only on an image no one else holds yet, such as one just
/// made from memory, which libvips marks `multiband` whatever it holds.
fn set_interpretation(img: &Img, i: libvips::ops::Interpretation) {
    // SAFETY: a live image that only we hold; `Type` is a plain field.
    unsafe { (*raw(&img.0)).Type = i as libvips::bindings::VipsInterpretation }
}

/// Set an int-array field (same rule as [`set_int`]). libvips copies the array.
pub fn set_array_int(img: &Img, name: &CStr, v: &[i32]) {
    // SAFETY: as set_int; `v` is read during the call only.
    unsafe {
        libvips::bindings::vips_image_set_array_int(
            raw(&img.0),
            name.as_ptr(),
            v.as_ptr(),
            v.len() as std::os::raw::c_int,
        )
    }
}

/// Render Pango `markup` (the caller escapes any text in it) with the font
/// description `font` (`"WenQuanYi Zen Hei 40"`, points at 72 dpi, so
/// pixels) as 8-bit sRGB with alpha. Called through the C API: the crate's
/// wrapper always passes a `fontfile`, and an empty one fails.
pub fn text_rgba(markup: &str, font: &str) -> Result<Img> {
    let t = std::ffi::CString::new(markup)
        .map_err(|_| Error::invalid("watermark: the text holds a NUL byte"))?;
    let f = std::ffi::CString::new(font)
        .map_err(|_| Error::invalid("watermark: the font holds a NUL byte"))?;
    let mut out: *mut libvips::bindings::VipsImage = std::ptr::null_mut();
    // SAFETY: NUL-terminated strings alive for the call; the variadic list
    // of (name, value) pairs ends with a null pointer, as libvips requires.
    let r = unsafe {
        libvips::bindings::vips_text(
            &mut out,
            t.as_ptr(),
            c"font".as_ptr(),
            f.as_ptr(),
            c"dpi".as_ptr(),
            72 as std::os::raw::c_int,
            c"rgba".as_ptr(),
            1 as std::os::raw::c_int,
            std::ptr::null::<std::os::raw::c_char>(),
        )
    };
    if r != 0 || out.is_null() {
        return Err(Error::unprocessable(format!(
            "watermark: the text cannot be drawn: {}",
            take_error()
        )));
    }
    Ok(Img(from_raw(out)))
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

/// The image a libvips operation returned, owned; a failure becomes the
/// step's 422 with libvips' reason (`decode_err`).
pub fn image_of(
    step: &str,
    r: std::result::Result<VipsImage, libvips::error::Error>,
) -> Result<Img> {
    r.map(Img).map_err(|_| decode_err(step))
}

/// The image's own pointer. The crate keeps its field private; `VipsImage` is
/// that one pointer (checked at compile time).
fn raw(img: &VipsImage) -> *mut libvips::bindings::VipsImage {
    const _: () = assert!(
        std::mem::size_of::<VipsImage>()
            == std::mem::size_of::<*mut libvips::bindings::VipsImage>()
    );
    // SAFETY: same size, and the struct's only field is this pointer.
    unsafe { std::mem::transmute_copy(img) }
}

/// Own an image pointer libvips returned (not null, a reference of our own).
fn from_raw(p: *mut libvips::bindings::VipsImage) -> VipsImage {
    // SAFETY: `VipsImage` is this one pointer (see `raw`); the caller hands
    // over the reference, which the crate's Drop releases.
    unsafe { std::mem::transmute::<*mut libvips::bindings::VipsImage, VipsImage>(p) }
}

/// libvips' `eval` signal, emitted as tiles are computed (in its threads):
/// past the deadline it sets the image's kill flag, and the next region that
/// libvips prepares on the image fails, ending the sink with an error.
unsafe extern "C" fn on_eval(
    image: *mut libvips::bindings::VipsImage,
    _progress: *mut libvips::bindings::VipsProgress,
    state: *mut std::ffi::c_void,
) {
    let state = &*(state as *const KillState);
    if std::time::Instant::now() > state.deadline {
        state.fired.store(true, std::sync::atomic::Ordering::SeqCst);
        libvips::bindings::vips_image_set_kill(image, 1);
    }
}

/// What `on_eval` reads and writes. libvips clears an image's kill flag once it
/// has reported it, so whether we stopped it is recorded here.
struct KillState {
    deadline: std::time::Instant,
    fired: std::sync::atomic::AtomicBool,
}

/// Stops libvips' evaluation of an image at a deadline: a single long operation
/// (a huge blur, a rotation) is cut off, not only the gaps between steps. Keep it
/// alive while the image is evaluated (saved, copied to memory), then ask
/// [`DeadlineWatch::killed`].
pub struct DeadlineWatch {
    image: *mut libvips::bindings::VipsImage,
    handler: std::os::raw::c_ulong,
    /// Read by `on_eval`; boxed so its address is stable.
    state: Box<KillState>,
}

impl DeadlineWatch {
    pub fn new(img: &VipsImage, deadline: std::time::Instant) -> DeadlineWatch {
        let state = Box::new(KillState {
            deadline,
            fired: std::sync::atomic::AtomicBool::new(false),
        });
        let image = raw(img);
        // SAFETY: `image` is a live VipsImage; our own reference keeps it alive
        // until `drop` disconnects the handler, so `state` outlives every call.
        unsafe {
            libvips::bindings::g_object_ref(image as *mut std::ffi::c_void);
            libvips::bindings::vips_image_set_progress(image, 1);
            let callback: unsafe extern "C" fn(
                *mut libvips::bindings::VipsImage,
                *mut libvips::bindings::VipsProgress,
                *mut std::ffi::c_void,
            ) = on_eval;
            let handler = libvips::bindings::g_signal_connect_data(
                image as *mut std::ffi::c_void,
                c"eval".as_ptr(),
                Some(std::mem::transmute::<
                    unsafe extern "C" fn(
                        *mut libvips::bindings::VipsImage,
                        *mut libvips::bindings::VipsProgress,
                        *mut std::ffi::c_void,
                    ),
                    unsafe extern "C" fn(),
                >(callback)),
                &*state as *const KillState as *mut std::ffi::c_void,
                None,
                0,
            );
            DeadlineWatch {
                image,
                handler,
                state,
            }
        }
    }

    /// Did the deadline stop the evaluation?
    pub fn killed(&self) -> bool {
        self.state.fired.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for DeadlineWatch {
    fn drop(&mut self) {
        // SAFETY: the handler was connected on this image, which we still hold.
        unsafe {
            libvips::bindings::g_signal_handler_disconnect(
                self.image as *mut std::ffi::c_void,
                self.handler,
            );
            libvips::bindings::g_object_unref(self.image as *mut std::ffi::c_void);
        }
        // A kill message left in libvips' error buffer belongs to no one now.
        let _ = take_error();
    }
}

/// Evaluate `img` through the sink `f` (save, copy to memory) with libvips
/// stopped at `deadline`: past it the answer is `504 Timeout`, whatever `f` did.
pub fn evaluate<T>(
    img: &VipsImage,
    deadline: Option<std::time::Instant>,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let Some(deadline) = deadline else {
        return f();
    };
    let watch = DeadlineWatch::new(img, deadline);
    let r = f();
    if watch.killed() {
        return Err(Error::too_slow());
    }
    r
}

/// A buffer libvips allocated (g_malloc), copied into a `Vec` and freed with
/// g_free. (The crate hands libvips' pointer to `Vec::from_raw_parts`, which
/// frees it with Rust's allocator and, after a failed save, builds a `Vec`
/// from a null pointer.)
///
/// # Safety
/// `buf` is null or a g_malloc'd block of at least `len` bytes.
unsafe fn take_buffer(buf: *mut std::ffi::c_void, len: usize) -> Option<Vec<u8>> {
    if buf.is_null() {
        return None;
    }
    let out = std::slice::from_raw_parts(buf as *const u8, len).to_vec();
    libvips::bindings::g_free(buf);
    Some(out)
}

/// `vips_image_write_to_buffer`: encode with a suffix such as `.webp[Q=80]`.
/// `None` on failure: read [`take_error`] for libvips' reason.
pub fn write_to_buffer(img: &VipsImage, suffix: &str) -> Option<Vec<u8>> {
    let suffix = std::ffi::CString::new(suffix).ok()?;
    let mut buf: *mut std::ffi::c_void = std::ptr::null_mut();
    let mut len: u64 = 0;
    // SAFETY: a live image, a NUL-terminated suffix, out-pointers of the right types.
    unsafe {
        let rc = libvips::bindings::vips_image_write_to_buffer(
            raw(img),
            suffix.as_ptr(),
            &mut buf,
            &mut len,
            std::ptr::null::<std::ffi::c_void>(),
        );
        let out = take_buffer(buf, len as usize);
        if rc != 0 {
            return None;
        }
        out
    }
}

/// `vips_image_write_to_memory`: the raw pixels. `None` as for [`write_to_buffer`].
pub fn write_to_memory(img: &VipsImage) -> Option<Vec<u8>> {
    let mut len: u64 = 0;
    // SAFETY: a live image; libvips returns null on failure.
    unsafe {
        let buf = libvips::bindings::vips_image_write_to_memory(raw(img), &mut len);
        take_buffer(buf, len as usize)
    }
}

/// Evaluate `img` into libvips' memory and hand its pixels (rows of
/// `width * bands` bytes, 8-bit images) to `f`, freeing them afterwards; no
/// copy into a `Vec`. Stopped at `deadline` like [`evaluate`].
pub fn with_pixels<T>(
    img: &VipsImage,
    deadline: Option<std::time::Instant>,
    step: &str,
    f: impl FnOnce(&[u8]) -> Result<T>,
) -> Result<T> {
    evaluate(img, deadline, || {
        let mut len: u64 = 0;
        // SAFETY: a live image; libvips returns null or a g_malloc'd block of `len` bytes.
        let buf = unsafe { libvips::bindings::vips_image_write_to_memory(raw(img), &mut len) };
        if buf.is_null() {
            return Err(decode_err(step));
        }
        // SAFETY: `buf` holds `len` bytes and lives until the g_free below.
        let r = f(unsafe { std::slice::from_raw_parts(buf as *const u8, len as usize) });
        // SAFETY: g_malloc'd by libvips; the slice is not used after this.
        unsafe { libvips::bindings::g_free(buf) };
        r
    })
}

/// A new 8-bit image of `width`×`height`×`bands` from `pixels`, which libvips
/// copies (so the image owns its memory), read as sRGB or grey. (Else libvips
/// calls it `multiband`, and savers that look for alpha by interpretation,
/// such as jxlsave, would take RGBA for four colour channels.)
///
/// Like `probe` for files, it starts libvips as pixmirror runs it (one
/// thread, no operation cache, untrusted loaders blocked) when pixels are the
/// first thing a caller hands it (a video frame).
pub fn from_pixels(pixels: &[u8], width: u32, height: u32, bands: u32) -> Result<Img> {
    init()?;
    // SAFETY: `pixels` is live for the call; libvips copies it and checks
    // the size against width * height * bands.
    let p = unsafe {
        libvips::bindings::vips_image_new_from_memory_copy(
            pixels.as_ptr() as *const std::ffi::c_void,
            pixels.len() as u64,
            width as i32,
            height as i32,
            bands as i32,
            libvips::bindings::VipsBandFormat_VIPS_FORMAT_UCHAR,
        )
    };
    if p.is_null() {
        return Err(Error::Internal(format!("from memory: {}", take_error())));
    }
    let img = Img(from_raw(p));
    set_interpretation(
        &img,
        if bands >= 3 {
            libvips::ops::Interpretation::Srgb
        } else {
            libvips::ops::Interpretation::BW
        },
    );
    Ok(img)
}

/// Decode `img` into memory (for steps that read it more than once, or out of
/// order), stopped at `deadline` like [`evaluate`].
pub fn copy_memory(img: Img, deadline: Option<std::time::Instant>, step: &str) -> Result<Img> {
    let watch = deadline.map(|d| DeadlineWatch::new(img.get(), d));
    let r = VipsImage::image_copy_memory(img.into_inner());
    if watch.as_ref().is_some_and(DeadlineWatch::killed) {
        return Err(Error::too_slow());
    }
    r.map(Img::new).map_err(|_| decode_err(step))
}
