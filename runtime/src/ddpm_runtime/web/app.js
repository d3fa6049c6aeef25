// The page: loads model.onnx next to it, reads its metadata, and samples on the visitor's machine with
// onnxruntime-web (files in ./ort/, copied by `ddpm-run web`). The maths lives in the modules it imports.
import * as ort from './ort/ort.min.mjs';
import { callTimes, fittedOptions, sampleBatch, toUint8 } from './generate.js';
import { DEFAULT_GUIDANCE_SCALE, onnxEpsModel } from './model.js';
import { readModelMetadata } from './onnx_metadata.js';
import { DEFAULT_SAMPLER, SAMPLERS } from './samplers/index.js';
import { NoiseSchedule } from './schedule.js';

const $ = (id) => document.getElementById(id);
const BATCH = 16; // images per model call (the images do not depend on it)
const PADDING = 2; // the grid of ddpm_runtime/images.py's make_grid
const WEBGPU_MAX_OPSET = 21; // ddpm_export's TARGET_OPSETS["web"]

function fail(message) {
  $('error').textContent = `error: ${message}`;
  $('go').disabled = true;
  window.ddpmStatus = { error: message };
}

function describe(metadata) {
  const training = metadata.training ?? {};
  const schedule = metadata.schedule;
  const parts = [
    `${metadata.image.channels}x${metadata.image.height}x${metadata.image.width}`,
    `${training.steps ?? '?'} training steps`,
    `${schedule.kind} schedule, T=${schedule.num_timesteps}`,
  ];
  if (metadata.classes) parts.push(`classes: ${metadata.classes.names.join(', ')}`);
  if (metadata.quantized) parts.push(`${metadata.quantized.mode} model (quantized)`);
  const own = metadata.sampling?.default; // the model's default sampler: a distilled student's, or a v model's
  if (own) parts.push(`samples with ${own.sampler}, ${own.steps} calls${'teacher_steps' in own ? ` (distilled from a teacher of ${own.teacher_steps} steps)` : ''}`);
  return parts.join(' · ');
}

/** Threads for onnxruntime-web (fixed before its first session): ?threads=N, else one per logical CPU. */
function wasmThreads(params) {
  const asked = Number(params.get('threads'));
  return Number.isInteger(asked) && asked >= 1 ? asked : navigator.hardwareConcurrency || 1;
}

async function main() {
  ort.env.wasm.wasmPaths = new URL('./ort/', import.meta.url).href;
  ort.env.wasm.numThreads = self.crossOriginIsolated ? wasmThreads(new URLSearchParams(location.search)) : 1;
  $('threads').textContent = self.crossOriginIsolated
    ? `WebAssembly threads: ${ort.env.wasm.numThreads} (add ?threads=N to the address for another number)`
    : 'WebAssembly runs single-threaded: for threads, serve this folder with `ddpm-run serve FOLDER` (or any server that sends Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp).';
  if (typeof WebAssembly !== 'object') return fail('this browser has no WebAssembly');

  let bytes;
  try {
    const response = await fetch('model.onnx');
    if (!response.ok) return fail(`model.onnx: HTTP ${response.status}`);
    bytes = new Uint8Array(await response.arrayBuffer());
  } catch (err) {
    return fail(`model.onnx: cannot load (${err.message})`);
  }
  let metadata;
  try {
    metadata = readModelMetadata(bytes, 'model.onnx');
  } catch (err) {
    return fail(err.message);
  }
  $('meta').textContent = describe(metadata);
  const adapter = navigator.gpu && (await navigator.gpu.requestAdapter().catch(() => null));
  if (adapter && metadata.quantized?.mode === 'fp16' && !adapter.features.has('shader-f16')) {
    // onnxruntime-web would compile float16 shaders anyway and fail on every node.
    $('backend').title = "WebGPU: this browser's adapter has no shader-f16, which a float16 model needs";
  } else if (adapter) {
    // onnxruntime-web's WebGPU kernels stop at opset 21: newer nodes would run on the CPU (see --target web).
    const opset = metadata.exporter?.opset ?? 0;
    $('backend').add(new Option(opset > WEBGPU_MAX_OPSET ? `WebGPU (opset ${opset}: partly CPU)` : 'WebGPU', 'webgpu'));
    if (opset > WEBGPU_MAX_OPSET) $('backend').title = 'export the model with `ddpm export-onnx --target web` to run all of it on WebGPU';
  }
  const defaults = metadata.sampling?.default;
  for (const name of Object.keys(SAMPLERS)) $('sampler').add(new Option(name, name, false, name === (defaults?.sampler ?? DEFAULT_SAMPLER)));
  if (defaults?.steps) $('steps').value = defaults.steps;
  if (metadata.classes) {
    $('class-label').hidden = false;
    $('guidance-label').hidden = false;
    $('class').add(new Option('no class', ''));
    metadata.classes.names.forEach((name, i) => $('class').add(new Option(name, String(i))));
    $('guidance').value = defaults?.guidance_scale ?? DEFAULT_GUIDANCE_SCALE; // a guided student's own 0
  }
  const sessions = {};
  const session = async (backend) => {
    // Errors only, as ddpm-run: ORT warns (on the console, as an error) that shape ops stay on the CPU.
    sessions[backend] ??= await ort.InferenceSession.create(bytes, { executionProviders: [backend], logSeverityLevel: 3 });
    return sessions[backend];
  };
  try {
    await session('wasm');
  } catch (err) {
    return fail(`model.onnx: onnxruntime-web cannot run it (${err.message ?? err})`);
  }
  $('go').disabled = false;
  window.ddpmStatus = { ready: true };
  $('controls').addEventListener('submit', (event) => {
    event.preventDefault();
    generate(metadata, session).catch((err) => fail(err.message ?? String(err)));
  });
}

async function generate(metadata, session) {
  $('error').textContent = '';
  $('go').disabled = true;
  window.ddpmStatus = { running: true };
  const count = Number($('count').value);
  const seed = Number($('seed').value);
  const sampler = $('sampler').value;
  if (!(Number.isInteger(count) && count >= 1)) throw new Error(`images must be a whole number >= 1, got ${$('count').value}`);
  if (!(Number.isInteger(seed) && seed >= 0)) throw new Error(`seed must be a whole number >= 0, got ${$('seed').value}`);
  const schedule = new NoiseSchedule(metadata.schedule);
  const T = schedule.numTimesteps;
  const steps = $('steps').value === '' ? (SAMPLERS[sampler].defaultSteps ?? T) : Number($('steps').value);
  if (!(Number.isInteger(steps) && steps >= 1 && steps <= T)) throw new Error(`model calls must be between 1 and T=${T}, got ${$('steps').value}`);
  const label = metadata.classes && $('class').value !== '' ? Number($('class').value) : null;
  const guidance = label === null ? 0 : Number($('guidance').value);
  if (!(guidance >= 0)) throw new Error(`guidance scale must be >= 0, got ${$('guidance').value}`);
  const timesteps = callTimes(schedule, metadata, sampler, steps);
  // the options the fitted times were fitted for, then those the model's own sampler runs with (a segment
  // student's DDIM: x_0 unclipped), as ddpm-run
  const own = metadata.sampling?.default;
  const options = { ...fittedOptions(metadata, sampler, steps), ...(own?.sampler === sampler ? own.options ?? {} : {}) };
  const backend = $('backend').value;
  const run = await session(backend);
  const { channels, height, width } = metadata.image;
  const cols = Math.ceil(Math.sqrt(count));
  const rows = Math.ceil(count / cols);
  const canvas = $('grid');
  canvas.width = cols * (width + PADDING) + PADDING;
  canvas.height = rows * (height + PADDING) + PADDING;
  canvas.style.width = `${canvas.width * 3}px`;
  const context = canvas.getContext('2d');
  context.fillStyle = '#000';
  context.fillRect(0, 0, canvas.width, canvas.height);
  const pixels = [];
  const calls = Math.ceil(count / BATCH) * steps;
  let done = 0;
  const started = performance.now();
  for (let first = 0; first < count; first += BATCH) {
    const size = Math.min(BATCH, count - first);
    const labels = label === null ? null : Array(size).fill(label);
    const epsModel = onnxEpsModel(ort, run, metadata, labels, guidance);
    const onStep = () => {
      done += 1;
      $('progress').value = done / calls;
      $('status').textContent = `model call ${done} of ${calls}`;
    };
    const x0 = await sampleBatch({ epsModel, schedule, sampler, timesteps, seed, first, count: size, pixels: channels * height * width, options, onStep });
    x0.forEach((x, j) => {
      const image = toUint8(x);
      pixels.push(Array.from(image));
      const i = first + j;
      const rgba = new ImageData(width, height);
      for (let p = 0; p < width * height; p++) {
        for (let c = 0; c < 3; c++) rgba.data[4 * p + c] = image[channels === 1 ? p : c * width * height + p];
        rgba.data[4 * p + 3] = 255;
      }
      context.putImageData(rgba, PADDING + (i % cols) * (width + PADDING), PADDING + Math.floor(i / cols) * (height + PADDING));
    });
  }
  const seconds = (performance.now() - started) / 1000;
  $('status').textContent = `${count} images, ${steps} calls each, ${backend}: ${(seconds / count).toFixed(3)} s/image`;
  $('save').href = canvas.toDataURL('image/png');
  $('save').hidden = false;
  $('go').disabled = false;
  window.ddpmStatus = { done: true, pixels, secondsPerImage: seconds / count, backend, threads: ort.env.wasm.numThreads, isolated: self.crossOriginIsolated };
}

main().catch((err) => fail(err.message ?? String(err)));
