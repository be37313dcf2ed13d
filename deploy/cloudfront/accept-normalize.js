// CloudFront Function (viewer request, runtime cloudfront-js-2.0): reduce the
// Accept header to one of three values so that each image URL has at most three
// cached variants. Browsers send dozens of distinct Accept strings; with the raw
// header in the cache key every one would be a separate cache entry and origin
// request, and without it CloudFront would serve one client's AVIF to another
// that cannot decode it (CloudFront does not honour Vary: Accept).
//
//   accepts AVIF and WebP -> "image/avif,image/webp"
//   accepts WebP          -> "image/webp"
//   anything else         -> "*/*"
//
// A request that cannot vary by Accept (no `format,auto` and no style, which
// may use it) gets "*/*": one variant. The classes follow pixmirror's own
// negotiation (src/process/lang/negotiate.rs): exact media types, `q=0` refuses.
// Tests: tests/ops/cloudfront.test.js (node --test).

function accepts(accept, mime) {
  var parts = accept.split(',');
  for (var i = 0; i < parts.length; i++) {
    var params = parts[i].split(';');
    if (params[0].trim().toLowerCase() !== mime) {
      continue;
    }
    var refused = false;
    for (var j = 1; j < params.length; j++) {
      var p = params[j].trim().toLowerCase();
      if (p.indexOf('q=') === 0 && parseFloat(p.substring(2)) === 0) {
        refused = true;
      }
    }
    if (!refused) {
      return true;
    }
  }
  return false;
}

function decoded(s) {
  try {
    return decodeURIComponent(s);
  } catch (e) {
    return s;
  }
}

function mayVary(request) {
  var qs = request.querystring || {};
  var names = ['x-oss-process', 'x-bce-process'];
  var texts = [decoded(request.uri || '')];
  for (var i = 0; i < names.length; i++) {
    var q = qs[names[i]];
    if (q) {
      texts.push(decoded(q.value || ''));
      var more = q.multiValue || [];
      for (var k = 0; k < more.length; k++) {
        texts.push(decoded(more[k].value || ''));
      }
    }
  }
  for (var t = 0; t < texts.length; t++) {
    if (texts[t].indexOf('format,auto') !== -1 || texts[t].indexOf('style/') === 0) {
      return true;
    }
  }
  return false;
}

function normalizeAccept(request) {
  var header = request.headers.accept;
  var accept = header ? header.value : '';
  if (!mayVary(request)) {
    return '*/*';
  }
  var webp = accepts(accept, 'image/webp');
  if (webp && accepts(accept, 'image/avif')) {
    return 'image/avif,image/webp';
  }
  return webp ? 'image/webp' : '*/*';
}

function handler(event) {
  var request = event.request;
  request.headers.accept = { value: normalizeAccept(request) };
  return request;
}
