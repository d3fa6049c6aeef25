// DDIM (Song, Meng and Ermon 2020, eq. 12), the step of ddpm_runtime/samplers/ddim.py.
import { epsFromX0, thresholdX0, x0FromEps } from './thresholding.js';

/** One step from x_t to x_prev for one image; returns x_prev. `noise` is needed when eta > 0. */
export function ddimStep(x, eps, alphaBarT, alphaBarPrev, eta = 0, noise = null, x0Mode = 'none', percentile = 0.995) {
  let x0 = x0FromEps(x, eps, alphaBarT);
  if (x0Mode !== 'none') {
    // bound x_0 and take the eps that goes with it, so the direction term agrees with it
    x0 = thresholdX0(x0, x0Mode, percentile);
    eps = epsFromX0(x, x0, alphaBarT);
  }
  const sigma = eta * Math.sqrt((1 - alphaBarPrev) / (1 - alphaBarT)) * Math.sqrt(1 - alphaBarT / alphaBarPrev);
  const direction = Math.sqrt(Math.max(1 - alphaBarPrev - sigma ** 2, 0));
  const a = Math.sqrt(alphaBarPrev);
  const out = x0.map((v, i) => a * v + direction * eps[i]);
  if (sigma > 0) {
    if (noise === null) throw new Error('ddimStep with eta > 0 needs noise');
    for (let i = 0; i < out.length; i++) out[i] += sigma * noise[i];
  }
  return out;
}
