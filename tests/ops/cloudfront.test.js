// The CloudFront Function's logic, run in node the way CloudFront runs it: the
// file evaluated as a script, `handler(event)` called with CloudFront's event
// shape. Run: node --test tests/ops/cloudfront.test.js
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const file = path.join(__dirname, '..', '..', 'deploy', 'cloudfront', 'accept-normalize.js');
const code = fs.readFileSync(file, 'utf8');
const ctx = vm.createContext({});
vm.runInContext(code, ctx, { filename: file });

function run(uri, query, accept) {
  const querystring = {};
  for (const [k, v] of Object.entries(query)) {
    querystring[k] = { value: v };
  }
  const headers = accept === undefined ? {} : { accept: { value: accept } };
  const event = { version: '1.0', context: { eventType: 'viewer-request' },
    viewer: { ip: '192.0.2.1' }, request: { method: 'GET', uri, querystring, headers, cookies: {} } };
  const out = ctx.handler(event);
  return out.headers.accept.value;
}

const auto = { 'x-oss-process': 'image/resize,w_300/format,auto' };
const browsers = {
  chrome: 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8',
  firefox: 'image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5',
  safari16: 'image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5',
  safari13: 'image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5',
  oldEdge: 'image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5',
  curl: '*/*',
};

test('browsers fall into the three classes', () => {
  assert.strictEqual(run('/a.jpg', auto, browsers.chrome), 'image/avif,image/webp');
  assert.strictEqual(run('/a.jpg', auto, browsers.firefox), 'image/avif,image/webp');
  assert.strictEqual(run('/a.jpg', auto, browsers.safari16), 'image/avif,image/webp');
  assert.strictEqual(run('/a.jpg', auto, browsers.safari13), 'image/webp');
  assert.strictEqual(run('/a.jpg', auto, browsers.oldEdge), '*/*');
  assert.strictEqual(run('/a.jpg', auto, browsers.curl), '*/*');
  assert.strictEqual(run('/a.jpg', auto, undefined), '*/*');
});

test('every Accept string maps to one of three values', () => {
  const seen = new Set();
  const types = ['image/avif', 'image/webp', 'image/png', 'image/*', '*/*', 'IMAGE/WEBP', 'image/jxl'];
  const qs = ['', ';q=0', ';q=0.0', ';q=0.5', ';q=1', ' ; q=0 '];
  for (let i = 0; i < 2000; i++) {
    const parts = [];
    for (let j = 0; j < 1 + (i % 5); j++) {
      parts.push(types[(i * 7 + j * 3) % types.length] + qs[(i + j * 5) % qs.length]);
    }
    seen.add(run('/a.jpg', auto, parts.join(',')));
  }
  assert.deepStrictEqual([...seen].sort(), ['*/*', 'image/avif,image/webp', 'image/webp']);
});

test('q=0 refuses a type, as pixmirror does', () => {
  assert.strictEqual(run('/a.jpg', auto, 'image/avif;q=0,image/webp'), 'image/webp');
  assert.strictEqual(run('/a.jpg', auto, 'image/avif,image/webp;q=0'), '*/*');
  assert.strictEqual(run('/a.jpg', auto, 'image/webp;q=0.000'), '*/*');
  assert.strictEqual(run('/a.jpg', auto, 'Image/WebP;Q=0.9'), 'image/webp');
});

test('an AVIF-only client gets the source format, never a WebP it refused', () => {
  assert.strictEqual(run('/a.jpg', auto, 'image/avif'), '*/*');
});

test('requests that cannot vary have one variant', () => {
  const fixed = { 'x-oss-process': 'image/resize,w_300/format,webp' };
  assert.strictEqual(run('/a.jpg', fixed, browsers.chrome), '*/*');
  assert.strictEqual(run('/a.jpg', {}, browsers.chrome), '*/*');
  assert.strictEqual(run('/a.jpg', { other: 'format,auto' }, browsers.chrome), '*/*');
});

test('auto is found in every form pixmirror reads', () => {
  assert.strictEqual(run('/a.jpg', { 'x-bce-process': 'image/format,auto' }, browsers.safari13), 'image/webp');
  assert.strictEqual(run('/a.jpg', { 'x-oss-process': 'image%2Fresize%2Cw_300%2Fformat%2Cauto' }, browsers.chrome),
    'image/avif,image/webp');
  assert.strictEqual(run('/a.jpg__op__resize,w_300__op__format,auto', {}, browsers.chrome), 'image/avif,image/webp');
  // Styles may use format,auto: they keep the normalised Accept.
  assert.strictEqual(run('/a.jpg', { 'x-oss-process': 'style/thumb' }, browsers.safari13), 'image/webp');
  // A malformed escape does not throw (CloudFront would answer 503).
  assert.strictEqual(run('/a%E0.jpg', { 'x-oss-process': 'image/format,auto%' }, browsers.chrome),
    'image/avif,image/webp');
});

test('the function fits CloudFront Functions limits', () => {
  assert.ok(Buffer.byteLength(code) < 10 * 1024, 'CloudFront Functions code is at most 10 KB');
  assert.ok(!/\b(require|import|setTimeout|fetch)\b/.test(code.replace(/\/\/.*$/gm, '')),
    'no modules, timers or network in a CloudFront Function');
});

function hints(query, headers) {
  const querystring = {};
  for (const [k, v] of Object.entries(query)) {
    querystring[k] = { value: v };
  }
  const h = {};
  for (const [k, v] of Object.entries(headers)) {
    h[k] = { value: v };
  }
  const event = { version: '1.0', context: { eventType: 'viewer-request' },
    viewer: { ip: '192.0.2.1' }, request: { method: 'GET', uri: '/a.jpg', querystring, headers: h, cookies: {} } };
  const out = ctx.handler(event).headers;
  const kept = {};
  for (const k of ['sec-ch-width', 'width', 'sec-ch-viewport-width', 'sec-ch-dpr', 'dpr']) {
    if (out[k]) kept[k] = out[k].value;
  }
  return kept;
}

const wAuto = { 'x-oss-process': 'image/resize,w_auto/dpr,auto' };

test('width hints round as pixmirror rounds them, the first that parses kept', () => {
  assert.deepStrictEqual(hints(wAuto, { 'sec-ch-width': '497' }), { 'sec-ch-width': '512' });
  assert.deepStrictEqual(hints(wAuto, { 'sec-ch-width': '510' }), { 'sec-ch-width': '512' });
  assert.deepStrictEqual(hints(wAuto, { 'sec-ch-width': '400', width: '300', 'sec-ch-viewport-width': '200' }),
    { 'sec-ch-width': '400' });
  assert.deepStrictEqual(hints(wAuto, { width: '300', 'sec-ch-viewport-width': '200' }), { width: '304' });
  assert.deepStrictEqual(hints(wAuto, { 'sec-ch-width': 'abc', 'sec-ch-viewport-width': '200' }),
    { 'sec-ch-viewport-width': '208' });
  for (const bad of ['abc', '-1', '1e9', '', '.', '12.5.1', '9'.repeat(10000)]) {
    assert.deepStrictEqual(hints(wAuto, { 'sec-ch-width': bad }), {}, bad.slice(0, 12));
  }
  assert.deepStrictEqual(hints(wAuto, { 'sec-ch-width': '0' }), { 'sec-ch-width': '16' });
  assert.deepStrictEqual(hints(wAuto, { 'sec-ch-width': '99999' }), { 'sec-ch-width': '4096' });
});

test('DPR hints round to 0.5 within [1, 3]', () => {
  assert.deepStrictEqual(hints(wAuto, { 'sec-ch-dpr': '2.625' }), { 'sec-ch-dpr': '2.5' });
  assert.deepStrictEqual(hints(wAuto, { 'sec-ch-dpr': 'x', dpr: '9' }), { dpr: '3' });
  assert.deepStrictEqual(hints(wAuto, { dpr: '0.5' }), { dpr: '1' });
});

test('hints a request cannot use are removed; a style keeps them rounded', () => {
  const plain = { 'x-oss-process': 'image/resize,w_300/format,auto' };
  assert.deepStrictEqual(hints(plain, { 'sec-ch-width': '500', 'sec-ch-dpr': '2' }), {});
  const widthOnly = { 'x-oss-process': 'image/resize,w_auto' };
  assert.deepStrictEqual(hints(widthOnly, { 'sec-ch-width': '500', 'sec-ch-dpr': '2' }), { 'sec-ch-width': '512' });
  const style = { 'x-oss-process': 'style/hero' };
  assert.deepStrictEqual(hints(style, { 'sec-ch-width': '500', 'sec-ch-dpr': '2.2' }),
    { 'sec-ch-width': '512', 'sec-ch-dpr': '2' });
});

test('a thousand random widths make at most 256 keys, as pixmirror', () => {
  const keys = new Set();
  for (let i = 0; i < 1000; i++) {
    keys.add(JSON.stringify(hints(wAuto, { 'sec-ch-width': String(1 + Math.floor(Math.random() * 5000)) })));
  }
  assert.ok(keys.size <= 256, String(keys.size));
});
