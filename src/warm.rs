//! `pixmirror warm`: render into the bucket the derivatives that access logs
//! ask for, before the CDN is pointed at pixmirror.
//!
//! Reads CloudFront standard logs (plain or gzip), nginx/Apache combined logs
//! and URL lists, ranks the request targets by hits, keeps those with a
//! process parameter (any grammar, path form, style suffix), and serves each
//! through the same request path as the server (`service::App::serve`), with
//! write-back made synchronous and every derivative admitted: a derivative
//! already stored and fresh comes back `store` (skipped), anything else is
//! rendered and written before the next one starts. A run that is stopped and
//! started again therefore continues where it stopped: what it wrote is skipped.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;

use crate::config::{Admit, Config, WriteMode};
use crate::service::{App, CacheStatus};

/// What one run did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Log lines read, and those that held a request target.
    pub lines: u64,
    pub requests: u64,
    /// Distinct targets with a process parameter, and the derivatives they
    /// name (a `format,auto` target names one per candidate format).
    pub urls: u64,
    pub derivatives: u64,
    pub rendered: u64,
    /// Already stored and fresh (or rendered earlier in this run).
    pub skipped: u64,
    /// By error code (`InvalidArgument`, `NoSuchKey`, ...).
    pub failed: BTreeMap<String, u64>,
    /// Derivative bytes written to the bucket.
    pub bytes_written: u64,
    pub seconds: f64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let failed: u64 = self.failed.values().sum();
        write!(
            f,
            "warm: {} lines, {} requests, {} URLs with processing ({} derivatives): rendered {}, skipped {}, failed {}",
            self.lines, self.requests, self.urls, self.derivatives, self.rendered, self.skipped, failed
        )?;
        if failed > 0 {
            let by: Vec<String> = self
                .failed
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            write!(f, " ({})", by.join(", "))?;
        }
        write!(
            f,
            "; {} bytes written in {:.1} s",
            self.bytes_written, self.seconds
        )
    }
}

/// The request target (`/path?query`) of one log line, if it has one: a
/// CloudFront line (tab-separated, columns named by its `#Fields:` header),
/// a combined-format line (`"GET /path?query HTTP/1.1"`), or a URL.
fn target(line: &str, cloudfront: Option<(usize, usize)>) -> Option<String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if let Some((stem, query)) = cloudfront {
        let cols: Vec<&str> = line.split('\t').collect();
        let stem = cols.get(stem)?;
        return Some(match cols.get(query) {
            Some(&q) if q != "-" && !q.is_empty() => format!("{stem}?{q}"),
            _ => stem.to_string(),
        });
    }
    let t = line.trim();
    if let Some(rest) = t
        .strip_prefix("http://")
        .or_else(|| t.strip_prefix("https://"))
    {
        return Some(
            rest.find('/')
                .map_or("/".to_string(), |i| rest[i..].to_string()),
        );
    }
    if t.starts_with('/') && !t.contains(' ') {
        return Some(t.to_string());
    }
    // Combined: the first quoted field is the request line.
    let start = t.find('"')?;
    let end = start + 1 + t[start + 1..].find('"')?;
    let mut parts = t[start + 1..end].split(' ');
    let method = parts.next()?;
    let path = parts.next()?;
    (matches!(method, "GET" | "HEAD") && path.starts_with('/')).then(|| path.to_string())
}

/// Read one log file (gzip or plain) and count its targets into `hits`.
fn read_log(path: &Path, hits: &mut HashMap<String, u64>, s: &mut Summary) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut reader = std::io::BufReader::new(file);
    let gz = reader
        .fill_buf()
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    let reader: Box<dyn BufRead> = if gz {
        Box::new(std::io::BufReader::new(flate2::read::MultiGzDecoder::new(
            reader,
        )))
    } else {
        Box::new(reader)
    };
    let mut cloudfront = None;
    for line in reader.lines() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        s.lines += 1;
        if let Some(fields) = line.strip_prefix("#Fields:") {
            let names: Vec<&str> = fields.split_whitespace().collect();
            let at = |n: &str| names.iter().position(|&f| f == n);
            cloudfront = at("cs-uri-stem").zip(at("cs-uri-query"));
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(t) = target(&line, cloudfront) {
            s.requests += 1;
            *hits.entry(t).or_insert(0) += 1;
        }
    }
    Ok(())
}

/// Targets by hits, most first (ties in name order, so runs are repeatable).
fn rank(hits: HashMap<String, u64>) -> Vec<String> {
    let mut ranked: Vec<(String, u64)> = hits.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.into_iter().map(|(t, _)| t).collect()
}

/// The configuration warm runs with: write-back synchronous (a derivative is
/// in the bucket before the next starts), every derivative admitted (up to
/// `max_per_original`), signatures not required (log URLs may have expired).
pub fn warm_config(mut cfg: Config) -> Config {
    cfg.derivatives.write = WriteMode::Sync;
    cfg.derivatives.admit = Admit::Always;
    cfg.signing.required = false;
    cfg
}

/// One request per derivative a target names: a `format,auto` target once per
/// format it can resolve to (each `process.auto_formats` entry, and the
/// source's own format).
fn requests(target: &str, cfg: &Config) -> Result<Vec<crate::service::ImageRequest>, String> {
    let build = |accept: &str| {
        let req = http::Request::get(target)
            .header(http::header::ACCEPT, accept)
            .body(())
            .map_err(|e| e.to_string())?;
        crate::http::request::parse(&req, cfg, &crate::http::request::Conditions::of(&req))
            .map_err(|e| e.code().to_string())
    };
    let first = build("*/*")?;
    if first.plan.is_none() {
        return Ok(Vec::new());
    }
    let mut out = vec![first];
    if out[0].vary.accept {
        for f in &cfg.process.auto_formats {
            out.push(build(&format!("image/{f}"))?);
        }
    }
    Ok(out)
}

/// Warm from `paths` with `concurrency` renders at once; a progress bar on
/// stderr when it is a terminal.
pub async fn run(
    app: Arc<App>,
    paths: &[std::path::PathBuf],
    concurrency: usize,
) -> Result<Summary, String> {
    let started = Instant::now();
    let mut s = Summary::default();
    let mut hits = HashMap::new();
    for p in paths {
        read_log(p, &mut hits, &mut s)?;
    }
    let mut jobs = Vec::new();
    for t in &rank(hits) {
        match requests(t, &app.cfg) {
            Ok(reqs) if reqs.is_empty() => {}
            Ok(reqs) => {
                s.urls += 1;
                jobs.extend(reqs);
            }
            Err(code) => {
                s.urls += 1;
                *s.failed.entry(code).or_insert(0) += 1;
            }
        }
    }
    s.derivatives = jobs.len() as u64;
    let bar = progress(jobs.len() as u64);
    let mut results = futures_util::stream::iter(jobs)
        .map(|req| {
            let app = app.clone();
            async move { app.serve(req).await }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(r) = results.next().await {
        match r {
            Ok(reply) => match reply.cache_status {
                CacheStatus::Processed | CacheStatus::Mirrored => {
                    s.rendered += 1;
                    s.bytes_written += reply.len;
                }
                CacheStatus::Store | CacheStatus::Memory => s.skipped += 1,
            },
            Err(e) => *s.failed.entry(e.code().to_string()).or_insert(0) += 1,
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    s.seconds = started.elapsed().as_secs_f64();
    Ok(s)
}

fn progress(len: u64) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {pos}/{len} derivatives  {per_sec}  ETA {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_requested_first() {
        let hits: HashMap<String, u64> = [("/b", 2), ("/a", 5), ("/c", 2), ("/d", 9)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(rank(hits), ["/d", "/a", "/b", "/c"]);
    }

    #[test]
    fn targets_of_each_log_form() {
        let combined = r#"203.0.113.9 - - [24/Nov/2026:10:00:00 +0000] "GET /a/b.jpg?x-oss-process=image/resize,w_300 HTTP/1.1" 200 512 "-" "curl/8""#;
        assert_eq!(
            target(combined, None).as_deref(),
            Some("/a/b.jpg?x-oss-process=image/resize,w_300")
        );
        let post = r#"1.2.3.4 - - [x] "POST /a.jpg HTTP/1.1" 200 1 "-" "-""#;
        assert_eq!(target(post, None), None);
        let cf = "2026-11-24\t10:00:00\tLAX1\t512\t1.2.3.4\tGET\td1.cloudfront.net\t/a.jpg\t200\t-\tcurl\tx-oss-process=image/resize,w_100";
        assert_eq!(
            target(cf, Some((7, 11))).as_deref(),
            Some("/a.jpg?x-oss-process=image/resize,w_100")
        );
        let cf_plain = cf.replace("x-oss-process=image/resize,w_100", "-");
        assert_eq!(target(&cf_plain, Some((7, 11))).as_deref(), Some("/a.jpg"));
        assert_eq!(
            target("https://img.example.com/p/q.png?imageView2/2/w/100", None).as_deref(),
            Some("/p/q.png?imageView2/2/w/100")
        );
        assert_eq!(
            target("/p/q.png!thumb", None).as_deref(),
            Some("/p/q.png!thumb")
        );
        assert_eq!(target("garbage", None), None);
    }
}
