//! `pixmirror process`: one local file through the server's request path. The
//! file's folder (or the current directory, when the file is inside it) is an
//! fs bucket; the process string becomes the query of a GET, parsed by
//! `request::parse` (every grammar, styles and snapping from the config,
//! `format,auto` against `--accept`) and answered by `App::serve` (the same
//! limits, memory budget, pool and `process.timeout`). Watermark image keys are
//! paths in that bucket. Nothing is written back and no mirror rule applies.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use super::request::{parse, Conditions, OSS_PARAM};
use crate::config::{Config, SigningConfig, StorageConfig, StorageKind};
use crate::metrics::Metrics;
use crate::process::lang::cos;
use crate::service::{App, ReplyBody};

/// What the command writes.
pub struct Processed {
    pub bytes: Vec<u8>,
    pub content_type: String,
    /// The canonical process string served (`None`: the file as it is).
    pub process: Option<String>,
}

/// Process `input` with `ops` (an OSS `image/...`, `video/...` or `style/...` string, its
/// actions alone, or a COS/Qiniu `imageMogr2/...`), as a GET with `Accept:
/// accept` would be on a server with `cfg`.
pub async fn process_file(
    mut cfg: Config,
    input: &Path,
    ops: &str,
    accept: Option<&str>,
) -> Result<Processed, String> {
    let (root, key) = bucket_of(input)?;
    cfg.storage = StorageConfig {
        kind: StorageKind::Fs,
        root,
        ..StorageConfig::default()
    };
    cfg.derivatives.store = false;
    cfg.mirror.rules.clear();
    cfg.signing = SigningConfig::default();
    cfg.sites.clear();
    crate::service::sites::check_styles(&cfg)?;
    let store = crate::storage::open::from_config(&cfg.storage).await?;
    let app = App::new(cfg.clone(), store, None, Arc::new(Metrics::new()));
    let uri = format!("/{}?{}", crate::mirror::rules::encode_key(&key), query(ops));
    let mut req = http::Request::get(uri);
    if let Some(a) = accept {
        req = req.header(http::header::ACCEPT, a);
    }
    let req = req.body(()).map_err(|e| e.to_string())?;
    let fail = |e: crate::error::Error| format!("{}: {e}", e.code());
    let ir = parse(&req, &cfg, &Conditions::of(&req)).map_err(fail)?;
    let reply = app.serve(ir).await.map_err(fail)?;
    let bytes = match reply.body {
        ReplyBody::Full(b) => b.to_vec(),
        ReplyBody::Empty => Vec::new(),
        ReplyBody::Stream(mut s) => {
            let mut out = Vec::new();
            while let Some(chunk) = s.next().await {
                out.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
            }
            out
        }
    };
    Ok(Processed {
        bytes,
        content_type: reply.content_type,
        process: reply.process,
    })
}

/// The query of the request: a COS/Qiniu item as it is, else the OSS parameter.
fn query(ops: &str) -> String {
    let whole = ["image/", "video/", "style/"]
        .iter()
        .any(|p| ops.starts_with(p));
    let item = if cos::is_cos(ops) || whole {
        ops.to_string()
    } else {
        format!("image/{ops}")
    };
    let value = utf8_percent_encode(&item, NON_ALPHANUMERIC).to_string();
    if cos::is_cos(ops) {
        value
    } else {
        format!("{OSS_PARAM}={value}")
    }
}

/// The bucket a local file is in: the current directory when the file is
/// inside it (its key the relative path), else the file's own folder.
fn bucket_of(input: &Path) -> Result<(PathBuf, String), String> {
    let file = input
        .canonicalize()
        .map_err(|e| format!("{}: {e}", input.display()))?;
    let cwd = std::env::current_dir()
        .and_then(|d| d.canonicalize())
        .map_err(|e| format!("the current directory: {e}"))?;
    let (root, rel) = match file.strip_prefix(&cwd) {
        Ok(rel) => (cwd.clone(), rel.to_path_buf()),
        Err(_) => {
            let name = file.file_name().ok_or("the input is not a file")?;
            let dir = file.parent().ok_or("the input is not a file")?;
            (dir.to_path_buf(), PathBuf::from(name))
        }
    };
    let key = rel
        .to_str()
        .ok_or("the input's path is not UTF-8")?
        .replace(std::path::MAIN_SEPARATOR, "/");
    Ok((root, key))
}
