// The seed's ancestral sampler (Ho et al. 2020, Algorithm 2), the step of ddpm_runtime/samplers/ddpm.py.
import { thresholdX0, x0FromEps } from './thresholding.js';

/** x_t -> x_prev for one image; `noise` is needed except on the last step (alphaBarPrev = 1). */
export function ddpmStep(x, eps, alphaBarT, alphaBarPrev, noise = null, x0Mode = 'none', percentile = 0.995) {
  const alphaT = alphaBarT / alphaBarPrev;
  const betaT = 1 - alphaT;
  let mean;
  if (x0Mode === 'none') {
    // the seed's mean, eq. 11: (x_t - beta_t / sqrt(1 - ab_t) eps) / sqrt(alpha_t)
    const c = betaT / Math.sqrt(1 - alphaBarT);
    const s = Math.sqrt(alphaT);
    mean = x.map((v, i) => (v - c * eps[i]) / s);
  } else {
    // the posterior mean, eq. 7, from the bounded x_0 estimate
    const x0 = thresholdX0(x0FromEps(x, eps, alphaBarT), x0Mode, percentile);
    const a = (Math.sqrt(alphaBarPrev) * betaT) / (1 - alphaBarT);
    const b = (Math.sqrt(alphaT) * (1 - alphaBarPrev)) / (1 - alphaBarT);
    mean = x0.map((v, i) => a * v + b * x[i]);
  }
  if (alphaBarPrev >= 1) return mean;
  if (noise === null) throw new Error('ddpmStep needs noise except on the last step');
  const std = Math.sqrt(((1 - alphaBarPrev) / (1 - alphaBarT)) * betaT);
  return mean.map((v, i) => v + std * noise[i]);
}
