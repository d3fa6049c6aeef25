// Runs the page's sampleBatch with an analytic stand-in for the network (the same formula as
// test_sampling_js.py's) and prints x_0 and the uint8 pixels; the request is JSON on argv[2].
import { sampleBatch, toUint8, callTimes } from '../../runtime/src/ddpm_runtime/web/generate.js';
import { NoiseSchedule } from '../../runtime/src/ddpm_runtime/web/schedule.js';

const request = JSON.parse(process.argv[2]);
const schedule = new NoiseSchedule(request.schedule);
// eps(x, t) = tanh(x / 2) (t / T + 1/2): the model sees float32 x and t, as through ONNX Runtime
const epsModel = async (xs, t) => {
  const tf = Math.fround(t);
  return xs.map((x) => Float64Array.from(x, (v) => Math.tanh(v / 2) * (tf / schedule.numTimesteps + 0.5)));
};
const timesteps = request.timesteps ?? callTimes(schedule, null, request.sampler, request.steps);
const calls = [];
const { sampler, seed, first, count, pixels, options } = request;
const run = { epsModel, schedule, sampler, timesteps, seed, first, count, pixels, options };
const x0 = await sampleBatch({ ...run, onStep: (i, t) => calls.push(t) });
console.log(JSON.stringify({ x0: x0.map((x) => Array.from(x)), pixels: x0.map((x) => Array.from(toUint8(x))), calls }));
