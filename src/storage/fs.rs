//! A local folder as the bucket. No key can reach a file outside the root:
//! `..`, `.`, empty segments, absolute paths, NUL and backslashes are refused,
//! symlinks resolving outside the root read as missing, and writes, deletes and
//! listings through a symlinked folder that leads outside are refused.
//! Metadata (content type, user metadata) lives in sidecars under `.pixmirror/`,
//! a prefix no key may use.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};

use super::{
    guess_content_type, Object, ObjectMeta, PutObject, Store, StoreError, StoreResult, Written,
};

const META_DIR: &str = ".pixmirror";

/// A GET of an object up to this size reads it whole in the same blocking call
/// that finds it; larger ones stream in `STREAM_CHUNK`s. A tokio file read is a
/// blocking-pool round trip per chunk: streaming a 4.4 MB photo in 64 KiB
/// chunks cost about 150 context switches per request, most of the kernel
/// time of a request that processes it.
const WHOLE_READ_MAX: u64 = 16 << 20;
const STREAM_CHUNK: usize = 1 << 20;

#[derive(Clone)]
pub struct FsStore {
    root: Arc<Path>,
}

#[derive(Serialize, Deserialize, Default)]
struct Sidecar {
    content_type: Option<String>,
    metadata: BTreeMap<String, String>,
}

fn io_err(e: std::io::Error) -> StoreError {
    match e.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory => StoreError::NotFound,
        ErrorKind::PermissionDenied => StoreError::AccessDenied(e.to_string()),
        // ENAMETOOLONG
        ErrorKind::InvalidFilename => {
            StoreError::InvalidKey("key too long for the filesystem".into())
        }
        _ => StoreError::Other(e.to_string()),
    }
}

impl FsStore {
    pub fn new(root: &Path) -> Result<FsStore, String> {
        std::fs::create_dir_all(root)
            .map_err(|e| format!("storage.root {}: {e}", root.display()))?;
        let root = root
            .canonicalize()
            .map_err(|e| format!("storage.root {}: {e}", root.display()))?;
        Ok(FsStore {
            root: Arc::from(root),
        })
    }

    /// Run `f` on the blocking pool: the std::fs calls of one operation make
    /// one round trip, not one each.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&FsStore) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || f(&me))
            .await
            .map_err(|e| StoreError::Other(format!("a file task failed: {e}")))?
    }

    /// The path of a key, refusing anything that could leave the root.
    fn path(&self, key: &str) -> StoreResult<PathBuf> {
        let bad = |why: &str| Err(StoreError::InvalidKey(format!("invalid key: {why}")));
        if key.is_empty() {
            return bad("empty");
        }
        if key.contains('\0') || key.contains('\\') {
            return bad("contains NUL or backslash");
        }
        if key.starts_with('/') {
            return bad("absolute path");
        }
        for seg in key.split('/') {
            if seg.is_empty() || seg == "." || seg == ".." {
                return bad("empty, `.` or `..` path segment");
            }
        }
        if key == META_DIR || key.starts_with(&format!("{META_DIR}/")) {
            return Err(StoreError::NotFound);
        }
        Ok(self.root.join(key))
    }

    fn sidecar(&self, key: &str) -> PathBuf {
        self.root.join(META_DIR).join(format!("{key}.json"))
    }

    /// Blocking: resolve symlinks and make sure the file is still inside the
    /// root. A key that leads outside (through a symlink to a file or a folder,
    /// whether or not the target exists) is refused (400), never "missing": a
    /// missing object would start a mirror fetch.
    fn confined(&self, path: &Path) -> StoreResult<PathBuf> {
        let outside = || StoreError::InvalidKey("invalid key: leaves the storage root".into());
        let mut existing = path;
        let real = loop {
            match std::fs::canonicalize(existing) {
                Ok(real) => break real,
                // A dangling symlink (to a file or a folder) names nothing
                // inside the root: refused, not "missing".
                Err(_) if std::fs::symlink_metadata(existing).is_ok_and(|m| m.is_symlink()) => {
                    return Err(outside());
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    existing = existing.parent().ok_or_else(outside)?;
                }
                Err(e) => return Err(io_err(e)),
            }
        };
        if !real.starts_with(&self.root) {
            return Err(outside());
        }
        if existing != path {
            // Inside the root, and the object itself does not exist.
            return Err(StoreError::NotFound);
        }
        Ok(real)
    }

    /// The real folder `dir` is (or will be) once symlinks are resolved, refused
    /// when that is outside the root: its nearest existing ancestor is resolved
    /// and checked before any folder is created (creating `link/a/` would
    /// otherwise create `a/` wherever `link` points), and `dir` again after.
    async fn confined_dir(&self, dir: &Path, create: bool) -> StoreResult<PathBuf> {
        let outside = || StoreError::InvalidKey("invalid key: leaves the storage root".into());
        let mut existing = dir;
        let real = loop {
            match tokio::fs::canonicalize(existing).await {
                Ok(real) => break real,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    existing = existing.parent().ok_or_else(outside)?;
                }
                Err(e) => return Err(io_err(e)),
            }
        };
        if !real.starts_with(&self.root) {
            return Err(outside());
        }
        if !create {
            return Ok(real);
        }
        tokio::fs::create_dir_all(dir).await.map_err(io_err)?;
        let real = tokio::fs::canonicalize(dir).await.map_err(io_err)?;
        if !real.starts_with(&self.root) {
            return Err(outside());
        }
        Ok(real)
    }

    /// Where a write of `path` goes: the confined real folder plus the file name.
    async fn write_target(&self, path: &Path) -> StoreResult<PathBuf> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(StoreError::InvalidKey("invalid key".into()));
        };
        Ok(self.confined_dir(dir, true).await?.join(name))
    }

    /// Blocking: reads the sidecar.
    fn meta_of(&self, key: &str, md: &std::fs::Metadata) -> ObjectMeta {
        let sidecar: Sidecar = match std::fs::read(self.sidecar(key)) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
            Err(_) => Sidecar::default(),
        };
        let mtime = md.modified().ok();
        let nanos = mtime
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // The inode too: a same-size file written within one tick of the
        // clock, or copied with its mtime kept, is still another version
        // (every write is a rename onto a new inode).
        use std::os::unix::fs::MetadataExt;
        ObjectMeta {
            size: md.len(),
            etag: format!("\"{:x}-{:x}-{:x}\"", md.len(), nanos, md.ino()),
            last_modified: mtime,
            content_type: Some(
                sidecar
                    .content_type
                    .unwrap_or_else(|| guess_content_type(key).to_string()),
            ),
            metadata: sidecar.metadata,
        }
    }

    /// Blocking: the object's file, opened, and its metadata.
    fn open(&self, key: &str) -> StoreResult<(std::fs::File, ObjectMeta)> {
        let path = self.confined(&self.path(key)?)?;
        let file = std::fs::File::open(&path).map_err(io_err)?;
        let md = file.metadata().map_err(io_err)?;
        if !md.is_file() {
            return Err(StoreError::NotFound);
        }
        let meta = self.meta_of(key, &md);
        Ok((file, meta))
    }

    /// Blocking: the object, read whole when small enough (see `WHOLE_READ_MAX`).
    fn get_sync(&self, key: &str) -> StoreResult<Object> {
        let (mut file, meta) = self.open(key)?;
        if meta.size > WHOLE_READ_MAX {
            let file = tokio::fs::File::from_std(file);
            let body = tokio_util::io::ReaderStream::with_capacity(file, STREAM_CHUNK);
            return Ok(Object {
                meta,
                body: Box::pin(body),
            });
        }
        // The size is the one just read; a file that grows meanwhile is read
        // to its end like a streamed one would be.
        let mut buf = Vec::with_capacity(meta.size as usize);
        file.read_to_end(&mut buf).map_err(io_err)?;
        let whole = bytes::Bytes::from(buf);
        Ok(Object {
            meta,
            body: Box::pin(futures_util::stream::once(async move { Ok(whole) })),
        })
    }

    /// The ETag is checked on the opened file, whose bytes a rename cannot
    /// change: what is read is the version checked.
    fn get_range_sync(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        etag: Option<&str>,
    ) -> StoreResult<bytes::Bytes> {
        let (mut file, meta) = self.open(key)?;
        if etag.is_some_and(|e| e != meta.etag) {
            return Err(StoreError::Changed);
        }
        read_range(&mut file, offset, len).map_err(io_err)
    }

    /// Write the sidecar, then the object from `content` (temp file + rename).
    async fn put_inner(
        &self,
        key: &str,
        content: Content<'_>,
        content_type: String,
        metadata: BTreeMap<String, String>,
    ) -> StoreResult<Written> {
        let path = self.write_target(&self.path(key)?).await?;
        let sidecar = self.write_target(&self.sidecar(key)).await?;
        let side = serde_json::to_vec(&Sidecar {
            content_type: Some(content_type),
            metadata,
        })
        .map_err(|e| StoreError::Other(e.to_string()))?;
        // The object first, then its sidecar, each temp file + rename: a reader
        // never sees a partial object, and a crash in between leaves the new
        // object with the *old* metadata (a derivative then looks stale and is
        // made again), never old bytes under new metadata that would pass as fresh.
        write_atomic(&path, content).await?;
        write_atomic(&sidecar, Content::Bytes(&side)).await?;
        // The ETag a later HEAD reports (size and mtime of the renamed file).
        let key = key.to_string();
        let meta = self
            .blocking(move |s| {
                let md = std::fs::metadata(&path).map_err(io_err)?;
                Ok(s.meta_of(&key, &md))
            })
            .await?;
        Ok(Written {
            etag: Some(meta.etag),
            last_modified: meta.last_modified,
        })
    }

    async fn list_inner(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let (dir_key, name_prefix) = match prefix.rsplit_once('/') {
            Some((d, n)) => (Some(d), n),
            None => (None, prefix),
        };
        let dir = match dir_key {
            Some(d) => match self.confined_dir(&self.path(d)?, false).await {
                Ok(real) => real,
                Err(StoreError::InvalidKey(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            },
            None => self.root.to_path_buf(),
        };
        let mut out = Vec::new();
        let mut rd = match tokio::fs::read_dir(&dir).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(e)),
        };
        while let Some(entry) = rd.next_entry().await.map_err(io_err)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(name_prefix) && !name.starts_with(".tmp-") && name != META_DIR {
                let ft = entry.file_type().await.map_err(io_err)?;
                if ft.is_file() {
                    out.push(match dir_key {
                        Some(d) => format!("{d}/{name}"),
                        None => name,
                    });
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// What an object is written from.
enum Content<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

async fn write_atomic(path: &Path, content: Content<'_>) -> StoreResult<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".tmp-{}-{:x}", std::process::id(), rand_u64()));
    let written = match content {
        Content::Bytes(b) => tokio::fs::write(&tmp, b).await,
        Content::File(src) => tokio::fs::copy(src, &tmp).await.map(|_| ()),
    };
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io_err(e));
    }
    if let Err(e) = tokio::fs::rename(&tmp, path).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io_err(e));
    }
    Ok(())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Up to `len` bytes of `file` from `offset` (fewer at its end): a ranged
/// read of a file (the fs store, a mirror's spool).
pub fn read_range(
    file: &mut std::fs::File,
    offset: u64,
    len: u64,
) -> std::io::Result<bytes::Bytes> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.take(len).read_to_end(&mut buf)?;
    Ok(bytes::Bytes::from(buf))
}

impl Store for FsStore {
    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<ObjectMeta>> {
        let key = key.to_string();
        self.blocking(move |s| s.open(&key).map(|(_, m)| m)).boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Object>> {
        let key = key.to_string();
        self.blocking(move |s| s.get_sync(&key)).boxed()
    }

    fn get_range<'a>(
        &'a self,
        key: &'a str,
        offset: u64,
        len: u64,
        etag: Option<&'a str>,
    ) -> BoxFuture<'a, StoreResult<bytes::Bytes>> {
        let key = key.to_string();
        let etag = etag.map(str::to_string);
        self.blocking(move |s| s.get_range_sync(&key, offset, len, etag.as_deref()))
            .boxed()
    }

    fn put<'a>(&'a self, key: &'a str, obj: PutObject) -> BoxFuture<'a, StoreResult<Written>> {
        async move {
            self.put_inner(
                key,
                Content::Bytes(&obj.bytes),
                obj.content_type,
                obj.metadata,
            )
            .await
        }
        .boxed()
    }

    fn put_file<'a>(
        &'a self,
        key: &'a str,
        src: &'a Path,
        content_type: String,
        metadata: BTreeMap<String, String>,
    ) -> BoxFuture<'a, StoreResult<Written>> {
        self.put_inner(key, Content::File(src), content_type, metadata)
            .boxed()
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        async move {
            let path = self.path(key)?;
            let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                return Err(StoreError::InvalidKey("invalid key".into()));
            };
            let path = self.confined_dir(dir, false).await?.join(name);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(e)),
            }
            let _ = tokio::fs::remove_file(self.sidecar(key)).await;
            Ok(())
        }
        .boxed()
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        self.list_inner(prefix).boxed()
    }

    fn ready(&self) -> BoxFuture<'_, StoreResult<()>> {
        async move {
            tokio::fs::metadata(&self.root).await.map_err(io_err)?;
            Ok(())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    async fn chunks(store: &FsStore, key: &str) -> Vec<bytes::Bytes> {
        let obj = store.get(key).await.expect("get");
        obj.body
            .map(|c| c.expect("chunk"))
            .collect::<Vec<_>>()
            .await
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test]
    async fn a_small_object_is_read_whole_in_one_chunk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = pattern(4_400_000);
        std::fs::write(dir.path().join("a.jpg"), &data).expect("write");
        let store = FsStore::new(dir.path()).expect("store");
        let got = chunks(&store, "a.jpg").await;
        assert_eq!(got.len(), 1, "one read, one chunk");
        assert_eq!(got[0].as_ref(), data.as_slice());
        let meta = store.head("a.jpg").await.expect("head");
        assert_eq!(meta.size, data.len() as u64);
        assert_eq!(meta.content_type.as_deref(), Some("image/jpeg"));
    }

    #[tokio::test]
    async fn a_large_object_streams_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = pattern(WHOLE_READ_MAX as usize + 12_345);
        std::fs::write(dir.path().join("big.bin"), &data).expect("write");
        let store = FsStore::new(dir.path()).expect("store");
        let got = chunks(&store, "big.bin").await;
        assert!(got.len() > 1, "streamed, got {} chunk(s)", got.len());
        assert!(got.iter().all(|c| c.len() <= STREAM_CHUNK));
        assert_eq!(got.concat(), data);
    }

    #[tokio::test]
    async fn get_and_head_keep_refusing_what_leaves_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), b"s").expect("write");
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link"))
            .expect("symlink");
        std::fs::create_dir(dir.path().join("folder")).expect("mkdir");
        let store = FsStore::new(dir.path()).expect("store");
        for key in ["folder", "missing", META_DIR] {
            assert!(
                matches!(store.get(key).await, Err(StoreError::NotFound)),
                "get {key}"
            );
            assert!(
                matches!(store.head(key).await, Err(StoreError::NotFound)),
                "head {key}"
            );
        }
        // A symlink out of the root is a refusal, never "missing" (which would
        // start a mirror fetch): to a file, and to a folder, existing or not.
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).expect("symlink");
        let gone = outside.path().join("gone");
        std::os::unix::fs::symlink(gone.join("x.jpg"), dir.path().join("dangling.jpg"))
            .expect("symlink");
        std::os::unix::fs::symlink(&gone, dir.path().join("dangling")).expect("symlink");
        for key in [
            "link",
            "out/secret",
            "out/missing.jpg",
            "dangling.jpg",
            "dangling/x.jpg",
        ] {
            assert!(
                matches!(store.get(key).await, Err(StoreError::InvalidKey(_))),
                "get {key}"
            );
            assert!(
                matches!(store.head(key).await, Err(StoreError::InvalidKey(_))),
                "head {key}"
            );
        }
        assert!(matches!(
            store.get("../secret").await,
            Err(StoreError::InvalidKey(_))
        ));
    }
}
