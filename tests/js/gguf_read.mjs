// Reads a GGUF file with @huggingface/gguf (an independent reader) and prints what it found as
// one JSON object: metadata (arrays as their length and first items), tensor infos, the
// parameter count. tests/scripts/gguf_npm_reader.sh checks it against what ferrum wrote.
import { gguf } from "@huggingface/gguf";

const path = process.argv[2];
const { metadata, tensorInfos, tensorDataOffset, parameterCount } = await gguf(path, {
  allowLocalFile: true,
  computeParametersCount: true,
});
const meta = {};
for (const [k, v] of Object.entries(metadata)) {
  meta[k] = Array.isArray(v) ? { length: v.length, head: v.slice(0, 3) } : typeof v === "bigint" ? Number(v) : v;
}
const tensors = tensorInfos.map((t) => ({
  name: t.name,
  shape: t.shape.map(Number),
  dtype: t.dtype,
  offset: Number(t.offset),
}));
console.log(JSON.stringify({ meta, tensors, data_offset: Number(tensorDataOffset), parameters: parameterCount }));
