// One batch of images as ddpm_runtime/generate.py makes it: image i of seed S starts from, and draws all
// its noise from, default_rng([S, i]) (rng.js), so the page's image i is ddpm-run's image i.
import { NormalGenerator } from './rng.js';
import { SAMPLERS } from './samplers/index.js';
import { samplingTimesteps } from './timesteps.js';

/** The call times: the model's fitted ones for this sampler and steps (metadata "sampling"), else the
 * spacing's formula (the sampler's own spacing when none is given). */
export function callTimes(schedule, metadata, sampler, steps, spacing = null) {
  const fitted = (metadata?.sampling?.fitted ?? []).find((f) => f.sampler === sampler && f.timesteps.length === steps);
  if ((spacing === null || spacing === 'fitted') && fitted) return fitted.timesteps.map(Number);
  if (spacing === 'fitted') throw new Error(`the model has no fitted timesteps for ${sampler} at ${steps} steps`);
  return samplingTimesteps(schedule, steps, spacing ?? SAMPLERS[sampler].spacing);
}

/** The sampler options the fitted times in use were fitted for (metadata "sampling", e.g. final step for
 * times whose last call lies above 0), as ddpm_runtime/generate.py's run_options adds them; else {}. */
export function fittedOptions(metadata, sampler, steps, spacing = null) {
  if (spacing !== null && spacing !== 'fitted') return {};
  const fitted = (metadata?.sampling?.fitted ?? []).find((f) => f.sampler === sampler && f.timesteps.length === steps);
  return fitted?.options ?? {};
}

/** x_0 (one Float64Array per image, values in [-1, 1] for a good model) for images first..first+count-1. */
export async function sampleBatch({ epsModel, schedule, sampler, timesteps, seed, first, count, pixels, options = {}, onStep }) {
  const spec = SAMPLERS[sampler];
  if (!spec) throw new Error(`unknown sampler ${JSON.stringify(sampler)} (choose from ${Object.keys(SAMPLERS).join(', ')})`);
  const generators = Array.from({ length: count }, (_, j) => new NormalGenerator([seed, first + j]));
  const noise = () => generators.map((g) => g.standardNormal(pixels));
  const xT = noise();
  return spec.sample(epsModel, xT, schedule, timesteps, { x0: spec.x0, ...options, noise, onStep });
}

/** (x + 1) 127.5, clipped and rounded half to even as NumPy's rint: the uint8 pixels ddpm-run writes. */
export function toUint8(x) {
  const out = new Uint8ClampedArray(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = Number.isNaN(x[i]) ? 0 : Math.min(Math.max((x[i] + 1) * 127.5, 0), 255);
    const r = Math.round(v);
    out[i] = r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }
  return out;
}
