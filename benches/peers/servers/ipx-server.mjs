// ipx (sharp underneath) on node:http via createIPX + createIPXNodeServer.
// Usage: node ipx-server.mjs PORT fs IMAGE_DIR      URL /w_<W>,f_webp,q_80/<key>
//        node ipx-server.mjs PORT http HOST:PORT    URL /w_<W>,f_webp,q_80/o/<key>
//          (originals over HTTP from http://HOST:PORT/<key>, e.g. Garage's website endpoint)
import http from "node:http";
import path from "node:path";
import { createRequire } from "node:module";
const require = createRequire(path.join(process.env.NODE_PATH || process.cwd(), "x.js"));
const { createIPX, createIPXNodeServer, ipxFSStorage, ipxHttpStorage } = require("ipx");
const [port, kind, where] = process.argv.slice(2);
const ipx = kind === "http"
  ? createIPX({
      storage: ipxHttpStorage({ domains: [where.split(":")[0]] }),
      alias: { "/o": `http://${where}` },
    })
  : createIPX({ storage: ipxFSStorage({ dir: path.resolve(where) }) });
http.createServer(createIPXNodeServer(ipx)).listen(Number(port), "127.0.0.1");
