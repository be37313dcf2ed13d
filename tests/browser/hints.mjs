// Headless Chromium (Debian's, driven by playwright-core) over a page on
// loopback whose images use w_auto, dpr,auto and format,auto. The page is
// served here with `Accept-CH`, and its /img/ requests are passed to the
// pixmirror under test (PIXMIRROR_BASE) with the browser's own headers, so
// pixmirror sees exactly the hints Chromium sends. For each device scale
// factor, prints what Chromium received: every image's naturalWidth, its
// Content-Type and Vary, and the hint headers of its request. Writes a
// screenshot per factor into OUT_DIR. Used by tests/browser.rs.
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(process.env.PIXMIRROR_NODE_MODULES + '/');
const { chromium } = require('playwright-core');
const base = process.env.PIXMIRROR_BASE;
const key = process.env.IMAGE_KEY;
const outDir = process.env.OUT_DIR;

const images = {
  // Sec-CH-Width: the 300 CSS px of `sizes`, in device pixels.
  width: `resize,w_auto/format,auto`,
  // A fixed 100 CSS px made sharp: Sec-CH-DPR.
  dpr: `resize,w_100/dpr,auto/format,auto`,
  // No `sizes`: no Sec-CH-Width; the viewport's CSS width times the DPR.
  viewport: `resize,w_auto/dpr,auto`,
};
const page = `<!doctype html><meta charset="utf-8"><title>pixmirror hints</title>
<body style="margin:0">
<img id="width" sizes="300px" style="width:300px" src="/img/${key}?x-oss-process=image/${images.width}">
<img id="dpr" width="100" src="/img/${key}?x-oss-process=image/${images.dpr}">
<img id="viewport" style="width:100%" src="/img/${key}?x-oss-process=image/${images.viewport}">
</body>`;

const HINTS = ['sec-ch-width', 'width', 'sec-ch-viewport-width', 'sec-ch-dpr', 'dpr'];
const seen = {};
const server = http.createServer(async (req, res) => {
  if (!req.url.startsWith('/img/')) {
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'accept-ch': 'Sec-CH-Width, Sec-CH-DPR, Sec-CH-Viewport-Width',
    });
    return res.end(page);
  }
  const headers = {};
  for (const h of ['accept', ...HINTS]) {
    if (req.headers[h] !== undefined) headers[h] = req.headers[h];
  }
  const id = Object.keys(images).find((k) => req.url.includes(images[k]));
  seen[id] = Object.fromEntries(HINTS.filter((h) => h in headers).map((h) => [h, headers[h]]));
  const r = await fetch(base + req.url.slice(4), { headers });
  const out = { 'content-type': r.headers.get('content-type') || '' };
  for (const h of ['vary', 'accept-ch', 'x-pixmirror-process', 'x-cache-status']) {
    if (r.headers.get(h)) out[h] = r.headers.get(h);
  }
  res.writeHead(r.status, out);
  res.end(Buffer.from(await r.arrayBuffer()));
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const results = {};
try {
  for (const scale of [2, 1]) {
    for (const k of Object.keys(seen)) delete seen[k];
    const context = await browser.newContext({ deviceScaleFactor: scale, viewport: { width: 360, height: 640 } });
    const tab = await context.newPage();
    const responses = {};
    tab.on('response', async (r) => {
      const id = Object.keys(images).find((k) => r.url().includes(images[k]));
      if (id) responses[id] = { status: r.status(), ...(await r.allHeaders()) };
    });
    await tab.goto(origin + '/', { waitUntil: 'load' });
    await tab.waitForFunction(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0));
    const natural = await tab.evaluate(() =>
      Object.fromEntries([...document.images].map((i) => [i.id, i.naturalWidth])));
    await tab.screenshot({ path: `${outDir}/hints-dpr${scale}.png`, fullPage: true });
    results[scale] = Object.fromEntries(Object.keys(images).map((id) => [id, {
      naturalWidth: natural[id],
      contentType: responses[id] && responses[id]['content-type'],
      vary: responses[id] && responses[id].vary,
      acceptCh: responses[id] && responses[id]['accept-ch'],
      process: responses[id] && responses[id]['x-pixmirror-process'],
      sent: seen[id],
    }]));
    await context.close();
  }
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(results));
