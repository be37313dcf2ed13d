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
//
// The client hints are rounded the way pixmirror rounds them
// (src/process/lang/hints.rs), so the cache key has as many variants as
// pixmirror's answers: for `w_auto`, of Sec-CH-Width, Width and
// Sec-CH-Viewport-Width the first that is a plain number is kept, clamped to
// [1, 4096] and rounded up to SNAP_WIDTHS (set it to pixmirror's
// `process.snap_widths`) or to a multiple of 16, and the others are removed;
// for `dpr,auto`, of Sec-CH-DPR and DPR the first that parses is kept,
// clamped to [1, 3] and rounded to the nearest 0.5. A request that cannot use
// a hint has them all removed. A style may use them: its hints are rounded,
// not removed.
// Tests: tests/ops/cloudfront.test.js (node --test).

var SNAP_WIDTHS = [];
var WIDTH_HINTS = ['sec-ch-width', 'width', 'sec-ch-viewport-width'];
var DPR_HINTS = ['sec-ch-dpr', 'dpr'];

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

function processTexts(request) {
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
  return texts;
}

// Does a process text name `needle`, or a style (which may)?
function uses(texts, needle) {
  for (var t = 0; t < texts.length; t++) {
    if (texts[t].indexOf(needle) !== -1 || texts[t].indexOf('style/') === 0) {
      return true;
    }
  }
  return false;
}

function mayVary(request) {
  return uses(processTexts(request), 'format,auto');
}

// A plain non-negative decimal of at most 12 characters, else NaN.
function number(v) {
  var s = (v || '').trim();
  if (s.length === 0 || s.length > 12 || !/^[0-9]*\.?[0-9]*$/.test(s) || s === '.') {
    return NaN;
  }
  return parseFloat(s);
}

function roundWidth(w) {
  w = Math.min(Math.max(Math.ceil(w), 1), 4096);
  if (SNAP_WIDTHS.length > 0) {
    var best = -1;
    var most = 0;
    for (var i = 0; i < SNAP_WIDTHS.length; i++) {
      var s = SNAP_WIDTHS[i];
      most = Math.max(most, s);
      if (s >= w && (best < 0 || s < best)) {
        best = s;
      }
    }
    return best < 0 ? most : best;
  }
  return Math.ceil(w / 16) * 16;
}

function roundDpr(d) {
  return Math.round(Math.min(Math.max(d, 1), 3) * 2) / 2;
}

// Keep the first of `names` whose value parses, rounded; remove the others.
function keepFirst(headers, names, round) {
  var kept = false;
  for (var i = 0; i < names.length; i++) {
    var h = headers[names[i]];
    var v = h ? number(h.value) : NaN;
    if (!kept && !isNaN(v)) {
      headers[names[i]] = { value: String(round(v)) };
      kept = true;
    } else {
      delete headers[names[i]];
    }
  }
}

function normalizeHints(request) {
  var texts = processTexts(request);
  var headers = request.headers;
  var groups = [[WIDTH_HINTS, 'w_auto', roundWidth], [DPR_HINTS, 'dpr,auto', roundDpr]];
  for (var g = 0; g < groups.length; g++) {
    if (uses(texts, groups[g][1])) {
      keepFirst(headers, groups[g][0], groups[g][2]);
    } else {
      for (var i = 0; i < groups[g][0].length; i++) {
        delete headers[groups[g][0][i]];
      }
    }
  }
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
  normalizeHints(request);
  return request;
}
