//! A local folder as the bucket. No key can reach a file outside the root:
//! `..`, `.`, empty segments, absolute paths, NUL and backslashes are refused,
//! symlinks resolving outside the root read as missing, and writes, deletes and
//! listings through a symlinked folder that leads outside are refused.
//! Metadata (content type, user metadata) lives in sidecars under `.pixmirror/`,
//! a prefix no key may use.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};

use super::{
    guess_content_type, Object, ObjectMeta, PutObject, Store, StoreError, StoreResult, Written,
};

const META_DIR: &str = ".pixmirror";

pub struct FsStore {
    root: PathBuf,
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
        Ok(FsStore { root })
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

    /// Resolve symlinks and make sure the file is still inside the root.
    async fn confined(&self, path: &Path) -> StoreResult<PathBuf> {
        let real = tokio::fs::canonicalize(path).await.map_err(io_err)?;
        if !real.starts_with(&self.root) {
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

    async fn meta_of(&self, key: &str, md: &std::fs::Metadata) -> ObjectMeta {
        let sidecar: Sidecar = match tokio::fs::read(self.sidecar(key)).await {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
            Err(_) => Sidecar::default(),
        };
        let mtime = md.modified().ok();
        let nanos = mtime
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        ObjectMeta {
            size: md.len(),
            etag: format!("\"{:x}-{:x}\"", md.len(), nanos),
            last_modified: mtime,
            content_type: Some(
                sidecar
                    .content_type
                    .unwrap_or_else(|| guess_content_type(key).to_string()),
            ),
            metadata: sidecar.metadata,
        }
    }

    async fn head_inner(&self, key: &str) -> StoreResult<(PathBuf, ObjectMeta)> {
        let path = self.confined(&self.path(key)?).await?;
        let md = tokio::fs::metadata(&path).await.map_err(io_err)?;
        if !md.is_file() {
            return Err(StoreError::NotFound);
        }
        let meta = self.meta_of(key, &md).await;
        Ok((path, meta))
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
        let md = tokio::fs::metadata(&path).await.map_err(io_err)?;
        let meta = self.meta_of(key, &md).await;
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
            None => self.root.clone(),
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

impl Store for FsStore {
    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<ObjectMeta>> {
        async move { self.head_inner(key).await.map(|(_, m)| m) }.boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Object>> {
        async move {
            let (path, meta) = self.head_inner(key).await?;
            let file = tokio::fs::File::open(&path).await.map_err(io_err)?;
            let body = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024);
            Ok(Object {
                meta,
                body: Box::pin(body),
            })
        }
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
