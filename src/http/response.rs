//! [`Reply`] / [`Error`] → hyper `Response`: the SPEC headers, 304, HEAD, JSON errors.

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full, StreamBody};

use crate::error::Error;
use crate::service::{etag_matches, Reply, ReplyBody, Vary};

pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// The hints a page should send for `w_auto` and `dpr,auto` (SPEC section 2).
const ACCEPT_CH: &str = "Sec-CH-Width, Sec-CH-DPR, Sec-CH-Viewport-Width";

/// `Vary`: `Accept` for `format,auto`, then exactly the hint headers read.
fn vary_header(v: Vary) -> Option<String> {
    let names: Vec<&str> = v
        .accept
        .then_some("Accept")
        .into_iter()
        .chain(v.hints.names())
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

pub fn reply(
    r: Reply,
    head: bool,
    if_none_match: Option<&str>,
    cache_control: &str,
) -> Response<Body> {
    let not_modified =
        !r.etag.is_empty() && if_none_match.is_some_and(|inm| etag_matches(inm, &r.etag));
    let mut b = Response::builder()
        .header("X-Cache-Status", r.cache_status.as_str())
        .header(header::CACHE_CONTROL, header_value(cache_control));
    if !r.etag.is_empty() {
        b = b.header(header::ETAG, header_value(&r.etag));
    }
    if let Some(t) = r.last_modified {
        b = b.header(
            header::LAST_MODIFIED,
            header_value(&httpdate::fmt_http_date(t)),
        );
    }
    if let Some(vary) = vary_header(r.vary) {
        b = b.header(header::VARY, header_value(&vary));
    }
    if !r.vary.hints.is_empty() {
        b = b.header("Accept-CH", ACCEPT_CH);
    }
    if let Some(p) = &r.process {
        b = b.header("X-Pixmirror-Process", header_value(p));
    }
    let resp = if not_modified {
        b.status(StatusCode::NOT_MODIFIED).body(empty())
    } else {
        b = b
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, header_value(&r.content_type))
            .header(header::CONTENT_LENGTH, r.len);
        let body = match (head, r.body) {
            (true, _) | (_, ReplyBody::Empty) => empty(),
            (false, ReplyBody::Full(bytes)) => full(bytes),
            (false, ReplyBody::Stream(s)) => {
                BodyExt::boxed_unsync(StreamBody::new(s.map_ok(hyper::body::Frame::data)))
            }
        };
        b.body(body)
    };
    resp.unwrap_or_else(|_| {
        error(
            &Error::Internal("could not build the response".into()),
            false,
        )
    })
}

pub fn error(e: &Error, head: bool) -> Response<Body> {
    let body = e.body();
    let len = body.len();
    let mut b = Response::builder()
        .status(e.status())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, len)
        .header(header::CACHE_CONTROL, "no-store");
    match e {
        Error::Busy(_) => b = b.header(header::RETRY_AFTER, "1"),
        Error::MethodNotAllowed(_) => b = b.header(header::ALLOW, "GET, HEAD"),
        _ => {}
    }
    b.body(if head { empty() } else { full(body) })
        .unwrap_or_else(|_| Response::new(empty()))
}
