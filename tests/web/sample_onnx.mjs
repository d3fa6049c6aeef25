// Samples with the page's code and onnxruntime-web's node build (its WebAssembly backend, as in the
// browser) from the model file and request (JSON) on argv[2..3]; prints the uint8 pixels per image.
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-web';
import { callTimes, sampleBatch, toUint8 } from '../../runtime/src/ddpm_runtime/web/generate.js';
import { onnxEpsModel } from '../../runtime/src/ddpm_runtime/web/model.js';
import { readModelMetadata } from '../../runtime/src/ddpm_runtime/web/onnx_metadata.js';
import { NoiseSchedule } from '../../runtime/src/ddpm_runtime/web/schedule.js';

const bytes = new Uint8Array(readFileSync(process.argv[2]));
const request = JSON.parse(process.argv[3]);
const metadata = readModelMetadata(bytes, process.argv[2]);
const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
const schedule = new NoiseSchedule(metadata.schedule);
const { channels, height, width } = metadata.image;
const epsModel = onnxEpsModel(ort, session, metadata, request.labels ?? null, request.guidanceScale ?? 0);
const timesteps = callTimes(schedule, metadata, request.sampler, request.steps);
const x0 = await sampleBatch({
  epsModel, schedule, timesteps, sampler: request.sampler, seed: request.seed, first: 0, count: request.count,
  pixels: channels * height * width,
});
console.log(JSON.stringify(x0.map((x) => Array.from(toUint8(x)))));
