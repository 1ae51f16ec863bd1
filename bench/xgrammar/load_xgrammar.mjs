// @mlc-ai/web-xgrammar 0.1.27 ships lib/index.js as a UMD bundle inside a package marked
// "type": "module": node's ESM loader runs it without `require`, and its Emscripten glue,
// which calls require("url") under node, throws "require is not defined in ES module
// scope". Run the bundle as the CommonJS script it is instead.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";

const require = createRequire(import.meta.url);
const pkgJson = require.resolve("@mlc-ai/web-xgrammar/package.json");
const file = dirname(pkgJson) + "/lib/index.js";

export const version = JSON.parse(readFileSync(pkgJson, "utf8")).version;

export function loadXgrammar() {
  const module = { exports: {} };
  // eslint-disable-next-line no-new-func
  const body = new Function("exports", "require", "module", "__filename", "__dirname", readFileSync(file, "utf8"));
  body(module.exports, createRequire(file), module, file, dirname(file));
  return module.exports;
}
