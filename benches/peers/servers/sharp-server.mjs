// sharp on a plain node:http server: GET /<key>?w=<width>
// -> resize to width (height proportional, never enlarge), WebP q80, metadata stripped
// (sharp drops metadata unless .keepMetadata()/.withMetadata() is called).
// Usage: node sharp-server.mjs PORT IMAGE_DIR   (run with NODE_PATH=<peers>/node/node_modules)
import http from "node:http";
import path from "node:path";
import { createRequire } from "node:module";
const require = createRequire(path.join(process.env.NODE_PATH || process.cwd(), "x.js"));
const sharp = require("sharp");
const [port, dir] = process.argv.slice(2);
const root = path.resolve(dir);
http.createServer(async (req, res) => {
  try {
    const u = new URL(req.url, "http://x");
    const file = path.join(root, decodeURIComponent(u.pathname));
    if (!file.startsWith(root + path.sep)) { res.writeHead(403).end(); return; }
    const w = parseInt(u.searchParams.get("w") || "0", 10);
    let img = sharp(file);
    if (w > 0) img = img.resize({ width: w, withoutEnlargement: true });
    const out = await img.webp({ quality: 80 }).toBuffer();
    res.writeHead(200, { "content-type": "image/webp", "content-length": out.length });
    res.end(out);
  } catch (e) {
    res.writeHead(e.code === "ENOENT" || /missing|exist/i.test(String(e.message)) ? 404 : 500).end(String(e.message));
  }
}).listen(Number(port), "127.0.0.1");
