// The samplers the page offers, found by name as in ddpm_runtime/samplers/__init__.py's REGISTRY, with
// the same default call counts, spacings and x_0 modes. Each `sample` runs a batch of images:
//
//   await sample(epsModel, xT, schedule, timesteps, { noise, x0, percentile, onStep }) -> x_0 per image
//
// epsModel(xs, t): one model call on the batch (xs: one Float64Array per image) at time t, resolving to
// the predicted noise per image; noise(): the next N(0, 1) draw for every image (each image's own
// generator, drawn in the NumPy runtime's order); onStep(i, t): after every model call.
import { consistencyStep } from './consistency.js';
import { ddimStep } from './ddim.js';
import { ddpmStep } from './ddpm.js';
import { dpmSolver2mStep } from './dpm_solver.js';
import { dpmSolver3mStep, stepOrders } from './dpm_solver_3m.js';
import { dpmSolver2mSdeStep } from './dpm_solver_sde.js';
import { thresholdX0, x0FromEps } from './thresholding.js';

function alphaBarPairs(schedule, timesteps, end = 1) {
  // (t, alpha_bar_t, alpha_bar_next) per listed time; after the last, alpha_bar = end (1: the clean image)
  return timesteps.map((t, i) => [t, schedule.alphaBarAt(t), i + 1 < timesteps.length ? schedule.alphaBarAt(timesteps[i + 1]) : end]);
}

async function callModel(epsModel, xs, t) {
  // float32 in, as the NumPy runtime's call_model casts; float64 out
  const eps = await epsModel(xs.map((x) => Float32Array.from(x)), t);
  return eps.map((e) => Float64Array.from(e));
}

async function sampleDdpm(epsModel, xT, schedule, timesteps, { noise, x0 = 'none', percentile = 0.995, onStep }) {
  let xs = xT;
  for (const [i, [t, ab, abPrev]] of alphaBarPairs(schedule, timesteps).entries()) {
    const eps = await callModel(epsModel, xs, t);
    const z = abPrev < 1 ? noise() : xs.map(() => null);
    xs = xs.map((x, b) => ddpmStep(x, eps[b], ab, abPrev, z[b], x0, percentile));
    onStep?.(i, t);
  }
  return xs;
}

async function sampleDdim(epsModel, xT, schedule, timesteps, { noise, eta = 0, x0 = 'clip', percentile = 0.995, onStep }) {
  let xs = xT;
  for (const [i, [t, ab, abPrev]] of alphaBarPairs(schedule, timesteps).entries()) {
    const eps = await callModel(epsModel, xs, t);
    const z = eta > 0 ? noise() : xs.map(() => null);
    xs = xs.map((x, b) => ddimStep(x, eps[b], ab, abPrev, eta, z[b], x0, percentile));
    onStep?.(i, t);
  }
  return xs;
}

function multistep(step, stochastic) {
  // DPM-Solver++(2M) and its SDE: the same loop, the SDE's step taking fresh noise
  // final 'step' (dpm-solver++ only, as in dpm_solver.py): land on t = 0 after the last call, no call there
  return async (epsModel, xT, schedule, timesteps, { noise, x0 = 'none', percentile = 0.995, final = 'x0', onStep }) => {
    let xs = xT;
    let prev = null;
    let hPrev = null;
    const end = final === 'step' && timesteps[timesteps.length - 1] > 0 ? schedule.alphaBarAt(0) : 1;
    for (const [i, [t, ab, abNext]] of alphaBarPairs(schedule, timesteps, end).entries()) {
      const eps = await callModel(epsModel, xs, t);
      const data = xs.map((x, b) => thresholdX0(x0FromEps(x, eps[b], ab), x0, percentile));
      const z = stochastic && abNext < 1 ? noise() : xs.map(() => null);
      let h = null;
      xs = xs.map((x, b) => {
        const [next, size] = step(x, data[b], prev && prev[b], ab, abNext, hPrev, z[b]);
        h = size;
        return next;
      });
      [prev, hPrev] = [data, h];
      onStep?.(i, t);
    }
    return xs;
  };
}

const sampleDpmSolver2m = multistep(dpmSolver2mStep, false);
const sampleDpmSolver2mSde = multistep(dpmSolver2mSdeStep, true);

async function sampleDpmSolver3m(epsModel, xT, schedule, timesteps, { x0 = 'none', percentile = 0.995, onStep }) {
  let xs = xT;
  const pairs = alphaBarPairs(schedule, timesteps);
  const orders = stepOrders(pairs.length);
  let history = []; // [x_0 estimates per image, the lambda step that led to them], newest last
  let hIn = null;
  for (const [i, [t, ab, abNext]] of pairs.entries()) {
    const eps = await callModel(epsModel, xs, t);
    const data = xs.map((x, b) => thresholdX0(x0FromEps(x, eps[b], ab), x0, percentile));
    const order = abNext < 1 ? orders[i] : 1;
    let h = null;
    xs = xs.map((x, b) => {
      let result;
      if (order >= 3 && history.length >= 2) {
        const [[prev2], [prev, hPrev2]] = history.slice(-2);
        result = dpmSolver3mStep(x, data[b], prev[b], prev2[b], ab, abNext, hIn, hPrev2);
      } else if (order === 2 && history.length > 0) {
        result = dpmSolver2mStep(x, data[b], history[history.length - 1][0][b], ab, abNext, hIn);
      } else {
        result = dpmSolver2mStep(x, data[b], null, ab, abNext, null);
      }
      h = result[1];
      return result[0];
    });
    history = [...history.slice(-1), [data, hIn]];
    hIn = h;
    onStep?.(i, t);
  }
  return xs;
}

async function sampleConsistency(epsModel, xT, schedule, timesteps, { noise, x0 = 'clip', percentile = 0.995, onStep }) {
  let xs = xT;
  for (const [i, [t, ab, abNext]] of alphaBarPairs(schedule, timesteps).entries()) {
    const eps = await callModel(epsModel, xs, t);
    const z = abNext < 1 ? noise() : xs.map(() => null);
    xs = xs.map((x, b) => consistencyStep(thresholdX0(x0FromEps(x, eps[b], ab), x0, percentile), abNext, z[b]));
    onStep?.(i, t);
  }
  return xs;
}

// name -> what ddpm_runtime's registry says of it (default steps null: all T, as the seed)
export const SAMPLERS = {
  ddpm: { sample: sampleDdpm, defaultSteps: null, spacing: 'trailing', x0: 'none' },
  ddim: { sample: sampleDdim, defaultSteps: 50, spacing: 'trailing', x0: 'clip' },
  'dpm-solver++': { sample: sampleDpmSolver2m, defaultSteps: 20, spacing: 'karras', x0: 'clip' },
  'dpm-solver++-sde': { sample: sampleDpmSolver2mSde, defaultSteps: 20, spacing: 'logsnr', x0: 'none' },
  'dpm-solver++3m': { sample: sampleDpmSolver3m, defaultSteps: 10, spacing: 'karras', x0: 'none' },
  consistency: { sample: sampleConsistency, defaultSteps: 4, spacing: 'karras', x0: 'clip' },
};
export const DEFAULT_SAMPLER = 'dpm-solver++-sde';
