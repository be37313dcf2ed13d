//! Any S3-compatible bucket through aws-sdk-s3: endpoint, region, path-style,
//! static keys or the default credential chain (env, profile, IMDS, IRSA).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream as SdkStream;
use aws_sdk_s3::Client;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{Object, ObjectMeta, PutObject, Store, StoreError, StoreResult, Written};
use crate::config::S3Config;

pub struct S3Store {
    client: Client,
    bucket: String,
    /// When HeadBucket last confirmed the bucket (Unix seconds; 0 = never).
    bucket_seen: AtomicU64,
}

/// Classify an SDK error by S3's error code, the status where there is none
/// (HEAD answers have no body):
/// - `NoSuchKey` (or a 404 without a code) is missing; `NoSuchBucket` is a
///   store failure, never "missing", so a misspelt bucket does not fire the mirror;
/// - `AccessDenied` (or a 403 without a code) is denied; other 403 codes
///   (`SignatureDoesNotMatch`, `InvalidAccessKeyId`, ...) are our configuration
///   failing, a store failure;
/// - `SlowDown` and other throttling (503) is `Throttled`: the SDK has already
///   retried it with backoff (standard retry mode, 3 attempts);
/// - no answer within `storage.timeout` is `Timeout` (504).
fn classify<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug,
    SdkError<E, R>: HasStatus,
{
    let detail = || format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e));
    let timed_out = match &e {
        SdkError::TimeoutError(_) => true,
        SdkError::DispatchFailure(d) => d.is_timeout(),
        _ => false,
    };
    if timed_out {
        return StoreError::Timeout(detail());
    }
    let code = e
        .as_service_error()
        .and_then(|s| s.code())
        .map(str::to_string);
    match (code.as_deref(), e.status()) {
        (Some("NoSuchKey" | "NotFound"), _) => StoreError::NotFound,
        (Some("PreconditionFailed"), _) | (_, Some(412)) => StoreError::Changed,
        // A 404 that does not say what is missing (a proxy, a missing bucket
        // behind one) is not "missing": that would start a mirror fetch. (A
        // HEAD's 404, which has no body, comes with the SDK's `NotFound` and
        // is checked against the bucket in `missing_key_or_bucket`.)
        (None, Some(404)) => StoreError::Other(detail()),
        (Some("AccessDenied"), _) | (None, Some(403)) => StoreError::AccessDenied(detail()),
        (Some("SlowDown" | "RequestLimitExceeded" | "Throttling" | "ThrottlingException"), _)
        | (_, Some(503)) => StoreError::Throttled(detail()),
        _ => StoreError::Other(detail()),
    }
}

pub trait HasStatus {
    fn status(&self) -> Option<u16>;
}

impl<E> HasStatus for SdkError<E, aws_sdk_s3::config::http::HttpResponse> {
    fn status(&self) -> Option<u16> {
        self.raw_response().map(|r| r.status().as_u16())
    }
}

fn to_system_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<SystemTime> {
    t.and_then(|d| SystemTime::try_from(*d).ok())
}

fn quote(etag: Option<&str>) -> String {
    match etag {
        Some(e) if e.starts_with('"') || e.starts_with("W/") => e.to_string(),
        Some(e) => format!("\"{e}\""),
        None => String::new(),
    }
}

impl S3Store {
    /// One PUT of `body` with its content type and user metadata (`put` and
    /// `put_file` differ only in where the body comes from).
    async fn put_body(
        &self,
        key: &str,
        content_type: String,
        metadata: std::collections::BTreeMap<String, String>,
        body: SdkStream,
    ) -> StoreResult<Written> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body);
        for (k, v) in metadata {
            req = req.metadata(k, v);
        }
        let r = req.send().await.map_err(classify)?;
        Ok(written(r.e_tag()))
    }

    pub async fn new(cfg: &S3Config, timeout: Duration) -> Result<S3Store, String> {
        let client = build_client(cfg, timeout).await;
        Ok(S3Store {
            client,
            bucket: cfg.bucket.clone(),
            bucket_seen: AtomicU64::new(0),
        })
    }

    /// A HEAD's 404 has no body to say whether the key or the bucket is missing.
    /// The bucket is confirmed with HeadBucket, at most once a minute while it
    /// exists; a missing bucket is a store failure (502), never "missing".
    async fn missing_key_or_bucket(&self) -> StoreError {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if now.saturating_sub(self.bucket_seen.load(Ordering::Relaxed)) < BUCKET_RECHECK_SECS {
            return StoreError::NotFound;
        }
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => {
                self.bucket_seen.store(now, Ordering::Relaxed);
                StoreError::NotFound
            }
            Err(e) => match classify(e) {
                StoreError::NotFound => StoreError::Other(format!(
                    "NoSuchBucket: the bucket `{}` does not exist",
                    self.bucket
                )),
                other => other,
            },
        }
    }
}

const BUCKET_RECHECK_SECS: u64 = 60;

/// A client for one bucket's settings (also used for mirror `origin_s3`).
pub async fn build_client(cfg: &S3Config, timeout: Duration) -> Client {
    let region = aws_config::Region::new(cfg.region.clone().unwrap_or_else(|| "us-east-1".into()));
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(region)
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(timeout)
                .build(),
        );
    if let (Some(ak), Some(sk)) = (&cfg.access_key_id, &cfg.secret_access_key) {
        loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
            ak.clone(),
            sk.clone(),
            None,
            None,
            "pixmirror-config",
        ));
    }
    let shared = loader.load().await;
    // Checksums only where S3 requires them: S3-compatible stores (Garage, MinIO
    // versions) reject the aws-chunked trailers the SDK sends for streamed bodies.
    let mut b = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(cfg.force_path_style)
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired);
    if let Some(ep) = &cfg.endpoint {
        b = b.endpoint_url(ep);
    }
    Client::from_conf(b.build())
}

fn body_stream(body: SdkStream) -> super::ByteStream {
    let s = futures_util::stream::unfold(body, |mut body| async move {
        match body.try_next().await {
            Ok(Some(b)) => Some((Ok(b), body)),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e.to_string())), body)),
        }
    });
    Box::pin(s)
}

/// The same fields of a HEAD and a GET response.
fn meta(
    len: Option<i64>,
    etag: Option<&str>,
    modified: Option<&aws_sdk_s3::primitives::DateTime>,
    content_type: Option<&str>,
    metadata: Option<&std::collections::HashMap<String, String>>,
) -> ObjectMeta {
    ObjectMeta {
        size: len.unwrap_or(0).max(0) as u64,
        etag: quote(etag),
        last_modified: to_system_time(modified),
        content_type: content_type.map(str::to_string),
        metadata: metadata.cloned().unwrap_or_default().into_iter().collect(),
    }
}

impl Store for S3Store {
    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<ObjectMeta>> {
        async move {
            let r = match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(classify)
            {
                Ok(r) => r,
                Err(StoreError::NotFound) => return Err(self.missing_key_or_bucket().await),
                Err(e) => return Err(e),
            };
            Ok(meta(
                r.content_length(),
                r.e_tag(),
                r.last_modified(),
                r.content_type(),
                r.metadata(),
            ))
        }
        .boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Object>> {
        async move {
            let r = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(classify)?;
            let meta = meta(
                r.content_length(),
                r.e_tag(),
                r.last_modified(),
                r.content_type(),
                r.metadata(),
            );
            Ok(Object {
                meta,
                body: body_stream(r.body),
            })
        }
        .boxed()
    }

    fn get_range<'a>(
        &'a self,
        key: &'a str,
        offset: u64,
        len: u64,
        etag: Option<&'a str>,
    ) -> BoxFuture<'a, StoreResult<Bytes>> {
        async move {
            let last = offset + len.max(1) - 1;
            let r = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .range(format!("bytes={offset}-{last}"))
                .set_if_match(etag.map(str::to_string))
                .send()
                .await
                .map_err(classify)?;
            let body =
                r.body.collect().await.map_err(|e| {
                    StoreError::Other(format!("reading a range of {key} failed: {e}"))
                })?;
            Ok(body.into_bytes())
        }
        .boxed()
    }

    fn put<'a>(&'a self, key: &'a str, obj: PutObject) -> BoxFuture<'a, StoreResult<Written>> {
        let body = SdkStream::from(Bytes::clone(&obj.bytes));
        self.put_body(key, obj.content_type, obj.metadata, body)
            .boxed()
    }

    fn put_file<'a>(
        &'a self,
        key: &'a str,
        path: &'a std::path::Path,
        content_type: String,
        metadata: std::collections::BTreeMap<String, String>,
    ) -> BoxFuture<'a, StoreResult<Written>> {
        async move {
            let body = SdkStream::from_path(path)
                .await
                .map_err(|e| StoreError::Other(format!("reading {}: {e}", path.display())))?;
            self.put_body(key, content_type, metadata, body).await
        }
        .boxed()
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        async move {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        }
        .boxed()
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        async move {
            let mut out = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let r = self
                    .client
                    .list_objects_v2()
                    .bucket(&self.bucket)
                    .prefix(prefix)
                    .set_continuation_token(token.clone())
                    .send()
                    .await
                    .map_err(classify)?;
                out.extend(
                    r.contents()
                        .iter()
                        .filter_map(|o| o.key().map(str::to_string)),
                );
                match r.next_continuation_token() {
                    Some(t) if r.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                    _ => break,
                }
            }
            Ok(out)
        }
        .boxed()
    }

    fn ready(&self) -> BoxFuture<'_, StoreResult<()>> {
        async move {
            self.client
                .head_bucket()
                .bucket(&self.bucket)
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        }
        .boxed()
    }
}

/// The PUT's answer: S3 returns the new object's ETag (quoted); its
/// Last-Modified is the time of the write.
fn written(etag: Option<&str>) -> Written {
    Written {
        etag: etag.map(str::to_string),
        last_modified: Some(std::time::SystemTime::now()),
    }
}
