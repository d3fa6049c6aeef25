// Opens an empty page of a built site (argv[2]) in Debian's chromium with WebGPU on (SwiftShader's
// software Vulkan where the machine has no GPU), creates an onnxruntime-web session for model.onnx on
// the backend argv[3] with ONNX Runtime's verbose log, and prints as JSON the adapter, the op types whose
// nodes the backend has no kernel for (they run on the CPU instead) and one call's output for argv[4].
import { chromium } from 'playwright-core';

const [url, backend, inputJson] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--enable-unsafe-webgpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const logs = [];
try {
  const page = await browser.newPage();
  page.on('console', (message) => logs.push(message.text()));
  await page.goto(url);
  const result = await page.evaluate(async ({ backend, inputJson }) => {
    const adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
    if (backend === 'webgpu' && !adapter) return { adapter: null };
    const ort = await import('./ort/ort.min.mjs');
    ort.env.wasm.wasmPaths = new URL('./ort/', location.href).href;
    ort.env.wasm.numThreads = 1;
    const bytes = new Uint8Array(await (await fetch('model.onnx')).arrayBuffer());
    const session = await ort.InferenceSession.create(bytes, { executionProviders: [backend], logSeverityLevel: 0, logVerbosityLevel: 0 });
    const input = JSON.parse(inputJson);
    const x = new ort.Tensor('float32', Float32Array.from(input.x), input.shape);
    const t = new ort.Tensor('float32', Float32Array.from(input.t), [input.shape[0]]);
    const { eps } = await session.run({ x, t });
    return { adapter: adapter ? (adapter.info?.architecture || 'yes') : null, eps: Array.from(eps.data) };
  }, { backend, inputJson });
  const missing = new Set();
  for (const line of logs) {
    const found = /kernel not found in registries for Op type: (\w+)/.exec(line);
    if (found) missing.add(found[1]);
  }
  console.log(JSON.stringify({ ...result, noKernel: [...missing].sort() }));
} finally {
  await browser.close();
}
