// DPM-Solver++(2M) SDE (Lu et al. 2022), the step of ddpm_runtime/samplers/dpm_solver_sde.py:
// x_t = (sigma_t / sigma_s) e^{-h} x_s + alpha_t (1 - e^{-2h}) D + sigma_t sqrt(1 - e^{-2h}) z.
import { lambdaStep } from './dpm_solver.js';

/** From s to t for one image, given its x_0 estimate (thresholded) and the previous one (or null).
 * Returns [x_t, h]; `noise` is needed except on the last step (alphaBarT = 1). */
export function dpmSolver2mSdeStep(x, x0, x0Prev, alphaBarS, alphaBarT, hPrev, noise) {
  if (alphaBarT >= 1) return [x0, Infinity]; // onto the clean image, first order
  const { alphaT, sigmaT, ratio, h } = lambdaStep(alphaBarS, alphaBarT);
  const second = x0Prev !== null && hPrev !== null;
  if (noise === null) throw new Error('dpmSolver2mSdeStep needs noise except on the last step');
  const decay = ratio * Math.exp(-h);
  const pull = -alphaT * Math.expm1(-2 * h);
  const spread = sigmaT * Math.sqrt(-Math.expm1(-2 * h));
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const d = second ? x0[i] + ((x0[i] - x0Prev[i]) * h) / (2 * hPrev) : x0[i];
    out[i] = decay * x[i] + pull * d + spread * noise[i];
  }
  return [out, h];
}
