// Runs the page's sampler steps on the cases of argv[2] (JSON) and prints their results.
import { ddimStep } from '../../runtime/src/ddpm_runtime/web/samplers/ddim.js';
import { dpmSolver2mSdeStep } from '../../runtime/src/ddpm_runtime/web/samplers/dpm_solver_sde.js';
import { thresholdX0 } from '../../runtime/src/ddpm_runtime/web/samplers/thresholding.js';

const f64 = (a) => (a === null ? null : Float64Array.from(a));
const cases = JSON.parse(process.argv[2]);
const out = cases.map((c) => {
  if (c.kind === 'ddim') {
    return Array.from(ddimStep(f64(c.x), f64(c.eps), c.ab, c.abPrev, c.eta, f64(c.noise), c.mode));
  }
  if (c.kind === 'threshold') return Array.from(thresholdX0(f64(c.x), c.mode, c.percentile));
  const [x, h] = dpmSolver2mSdeStep(f64(c.x), f64(c.x0), f64(c.x0Prev), c.ab, c.abNext, c.hPrev, f64(c.noise));
  return [...x, h];
});
console.log(JSON.stringify(out));
