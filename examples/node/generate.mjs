// Draw images from a generator file (`ddpm export-generator`) in Node.js with onnxruntime-node: the
// sampler, its schedule and times are inside the graph, so this file only makes noise and writes pixels.
//   node examples/node/generate.mjs generator.onnx grid.png [count=16] [seed=0] [class=0] [noise.bin]
// noise.bin (optional): the float32 noise fed to the graph, each input in turn, to check the images.
import { writeFileSync } from "node:fs";
import { crc32, deflateSync } from "node:zlib";
import ort from "onnxruntime-node";

const [model, out, count = 16, seed = 0, label = 0, noiseFile] = process.argv.slice(2);
const n = Number(count);
const session = await ort.InferenceSession.create(model);

let state = Number(seed) >>> 0; // mulberry32, then Box-Muller: any source of N(0, 1) numbers will do
const uniform = () => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = Math.imul(state ^ (state >>> 15), state | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const gaussian = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());

const feeds = {}; // x_T [batch, C, H, W], step_noise [draws, batch, C, H, W], y [batch] for class models
for (const { name, shape } of session.inputMetadata) {
  const dims = shape.map((d) => (typeof d === "number" ? d : n)); // the symbolic axis is the batch
  const size = dims.reduce((a, b) => a * b, 1);
  if (name === "y") feeds.y = new ort.Tensor("int64", BigInt64Array.from({ length: n }, () => BigInt(label)), dims);
  else if (name !== "guidance_scale") feeds[name] = new ort.Tensor("float32", Float32Array.from({ length: size }, gaussian), dims);
}
if (noiseFile) writeFileSync(noiseFile, Buffer.concat(["x_T", "step_noise"].filter((k) => k in feeds).map((k) => Buffer.from(feeds[k].data.buffer))));
const { images } = await session.run(feeds); // uint8 [batch, H, W, C]
const [, h, w, c] = images.dims;

const cols = Math.ceil(Math.sqrt(n)), rows = Math.ceil(n / cols), pad = 2; // a grid as ddpm-run draws it
const width = cols * (w + pad) + pad, height = rows * (h + pad) + pad;
const raw = Buffer.alloc(height * (1 + width * c)); // each PNG row: filter byte 0, then the pixels
for (let i = 0; i < n; i++)
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w * c; x++) {
      const top = pad + Math.floor(i / cols) * (h + pad), left = pad + (i % cols) * (w + pad);
      raw[(top + y) * (1 + width * c) + 1 + left * c + x] = images.data[((i * h + y) * w) * c + x];
    }
const chunk = (type, data) => {
  const body = Buffer.concat([Buffer.from(type), data]), length = Buffer.alloc(4), crc = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
};
const header = Buffer.alloc(13);
header.writeUInt32BE(width, 0);
header.writeUInt32BE(height, 4);
header.set([8, c === 1 ? 0 : 2, 0, 0, 0], 8); // 8 bits, grey or RGB
const png = [Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", header), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))];
writeFileSync(out, Buffer.concat(png));
console.log(`wrote ${n} images to ${out}`);
