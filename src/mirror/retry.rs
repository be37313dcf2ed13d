//! One origin's attempts: why an attempt failed, and the retries with backoff,
//! each attempt (body included) under the rule's `timeout`.

use std::time::Duration;

use crate::config::MirrorRule;
use crate::error::Error;

/// Why one attempt at one origin failed.
pub enum Failure {
    /// 404/410: no retry, no next origin.
    NotFound,
    /// 5xx, timeout, connection failure: retry, then the next origin.
    Retry(Error),
    /// Anything else: give up now.
    Fatal(Error),
    /// A ranged GET answered whole (200): the origin does not serve ranges.
    NoRanges,
}

/// The mirror's error, with a public message.
pub fn mirror_failed(msg: &str) -> Error {
    Error::MirrorFailed(msg.to_string())
}

/// One origin: first try plus `retries`, with backoff, each under `timeout`.
pub async fn with_retries<T, F, Fut>(rule: &MirrorRule, attempt: F) -> Result<T, Failure>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let mut delay = Duration::from_millis(100);
    let mut last = Failure::Retry(mirror_failed("origin failed"));
    for n in 0..=rule.retries {
        if n > 0 {
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
        match tokio::time::timeout(rule.timeout.0, attempt()).await {
            Ok(Err(Failure::Retry(e))) => last = Failure::Retry(e),
            Ok(other) => return other,
            Err(_) => last = Failure::Retry(Error::Timeout("the mirror origin timed out".into())),
        }
    }
    Err(last)
}
