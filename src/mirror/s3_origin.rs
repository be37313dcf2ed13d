//! A mirror rule's `origin_s3`: the original read from another bucket.

use super::retry::{mirror_failed, Failure};
use super::spool::{spool, validate, Fetched, Limits, OriginMeta};
use crate::config::MirrorRule;
use crate::storage::{DynStore, StoreError};

/// One attempt at `okey` in the origin bucket.
pub async fn fetch(
    store: &DynStore,
    okey: &str,
    rule: &MirrorRule,
    limits: Limits,
) -> Result<Fetched, Failure> {
    let obj = store.get(okey).await.map_err(failure)?;
    let ct = obj.meta.content_type.clone();
    let max = limits.max_for(ct.as_deref(), &[]);
    if obj.meta.size > max {
        return Err(Failure::Fatal(crate::storage::too_large(max)));
    }
    let spooled = spool(obj.body, limits, ct.as_deref()).await?;
    let meta = OriginMeta {
        content_md5: etag_md5(&obj.meta.etag),
        content_type: obj.meta.content_type,
        etag: Some(obj.meta.etag),
        last_modified: obj.meta.last_modified,
    };
    validate(spooled, meta, rule)
}

/// What a failed call to the origin bucket means for the fetch: not found, a
/// denial (given up), or a failure worth retrying.
pub fn failure(e: StoreError) -> Failure {
    match e {
        StoreError::NotFound => Failure::NotFound,
        StoreError::AccessDenied(_) => {
            Failure::Fatal(mirror_failed("the origin bucket denied access"))
        }
        // As an HTTP origin whose size or ETag changed between ranges.
        StoreError::Changed => Failure::Fatal(mirror_failed(
            "the origin's object changed during the snapshot",
        )),
        e => {
            tracing::warn!(error = %e, "mirror S3 origin failed");
            Failure::Retry(mirror_failed("the origin bucket failed"))
        }
    }
}

/// The Content-MD5 (base64) an S3 ETag stands for: the hex MD5 of the content
/// for a single-part upload; `None` for multipart (`"<hex>-<parts>"`) or other forms.
fn etag_md5(etag: &str) -> Option<String> {
    use base64::Engine;
    let hex_md5 = etag.trim_start_matches("W/").trim_matches('"');
    if hex_md5.len() != 32 {
        return None;
    }
    let bytes = hex::decode(hex_md5).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_etags_as_md5() {
        assert_eq!(
            etag_md5("\"d41d8cd98f00b204e9800998ecf8427e\"").as_deref(),
            Some("1B2M2Y8AsgTpgAmY7PhCfg==")
        );
        assert_eq!(etag_md5("\"d41d8cd98f00b204e9800998ecf8427e-3\""), None);
        assert_eq!(etag_md5("\"abc\""), None);
    }
}
