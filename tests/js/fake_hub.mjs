// A local stand-in for the Hugging Face hub, for `ferrum pull` tests without network. Serves
// the folder FAKE_HUB_DIR as repos ferrum-test/tiny-llama and ferrum-test/gated (the latter
// needs "Authorization: Bearer hf_secret"), with the hub's endpoints and headers:
//   GET  /api/models/{repo}/revision/{rev}   -> {sha, siblings: [{rfilename}]}
//   HEAD /{repo}/resolve/{rev}/{file}        -> ETag / X-Linked-Etag, X-Repo-Commit; LFS
//   GET  /{repo}/resolve/{rev}/{file}           files (.safetensors, .gguf) redirect to /cdn/{sha256}
//   GET  /cdn/{sha256}                       -> the bytes, with Range support
// FAKE_HUB_CUT_AFTER=N cuts the first /cdn download after N bytes (to test resuming).
// Prints the port on stdout; logs one line per request to FAKE_HUB_LOG.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";

const dir = process.env.FAKE_HUB_DIR;
const logFile = process.env.FAKE_HUB_LOG;
let cutAfter = Number(process.env.FAKE_HUB_CUT_AFTER || 0);
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const TAGS = { main: COMMIT, v1: COMMIT, [COMMIT]: COMMIT };

const files = fs.readdirSync(dir).filter((f) => fs.statSync(path.join(dir, f)).isFile());
const info = {};
for (const f of files) {
  const data = fs.readFileSync(path.join(dir, f));
  const lfs = f.endsWith(".safetensors") || f.endsWith(".gguf");
  const etag = lfs ? crypto.createHash("sha256").update(data).digest("hex")
                   : crypto.createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex");
  info[f] = { data, lfs, etag };
}
const byEtag = Object.fromEntries(Object.values(info).map((i) => [i.etag, i]));
// Files a model repo also has that ferrum must not download.
const extraSiblings = ["onnx/model.onnx", "pytorch_model.bin", "README.md", ".gitattributes"];

const log = (line) => logFile && fs.appendFileSync(logFile, line + "\n");

function sendRange(req, res, data, headers) {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range || "");
  const start = m ? Number(m[1]) : 0;
  if (start > data.length) { res.writeHead(416); return res.end(); }
  const body = data.subarray(start);
  res.writeHead(m ? 206 : 200, { ...headers, "Content-Length": body.length, "Accept-Ranges": "bytes",
    ...(m ? { "Content-Range": `bytes ${start}-${data.length - 1}/${data.length}` } : {}) });
  if (req.method === "HEAD") return res.end();
  if (cutAfter > 0 && !m && body.length > cutAfter) {
    // Simulated network drop: part of the body, then the connection dies.
    const n = cutAfter;
    cutAfter = 0;
    res.write(body.subarray(0, n), () => setTimeout(() => req.socket.destroy(), 50));
    return;
  }
  res.end(body);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  log(`${req.method} ${url.pathname} range=${req.headers.range || "-"} auth=${req.headers.authorization || "-"}`);
  const notFound = () => { res.writeHead(404, { "Content-Type": "application/json", "X-Error-Code": "RepoNotFound" }); res.end('{"error":"Repository not found"}'); };
  let m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(url.pathname);
  const repoOk = (repo) => repo === "ferrum-test/tiny-llama" || repo === "ferrum-test/gated";
  const authorized = (repo) => repo !== "ferrum-test/gated" || req.headers.authorization === "Bearer hf_secret";
  if (m) {
    const [, repo, rev] = m;
    if (!repoOk(repo) || !TAGS[decodeURIComponent(rev)]) return notFound();
    if (!authorized(repo)) { res.writeHead(401); return res.end('{"error":"gated"}'); }
    res.writeHead(200, { "Content-Type": "application/json" });
    return res.end(JSON.stringify({ id: repo, sha: COMMIT, siblings: [...files, ...extraSiblings].map((f) => ({ rfilename: f })) }));
  }
  m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
  if (m) {
    const [, repo, rev, file] = m;
    const f = info[decodeURIComponent(file)];
    if (!repoOk(repo) || !TAGS[rev] || !f) return notFound();
    if (!authorized(repo)) { res.writeHead(401); return res.end(); }
    const common = { "X-Repo-Commit": COMMIT };
    if (f.lfs) {
      // Another host name, as the hub's CDN is: clients must not send it the hub token.
      res.writeHead(302, { ...common, Location: `http://localhost:${server.address().port}/cdn/${f.etag}`, "X-Linked-Etag": `"${f.etag}"`, "X-Linked-Size": f.data.length, ETag: '"pointer-etag"' });
      return res.end();
    }
    return sendRange(req, res, f.data, { ...common, ETag: `"${f.etag}"` });
  }
  m = /^\/cdn\/([0-9a-f]+)$/.exec(url.pathname);
  if (m && byEtag[m[1]]) {
    if (req.headers.authorization) { res.writeHead(400); return res.end("the CDN must not get the hub token"); }
    return sendRange(req, res, byEtag[m[1]].data, {});
  }
  notFound();
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
