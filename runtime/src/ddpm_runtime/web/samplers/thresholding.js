// What a sampler does with its x_0 estimate (ddpm_runtime/samplers/thresholding.py): nothing, clip to
// the data range [-1, 1], or dynamic thresholding (Saharia et al. 2022). Arrays hold one image each.

export const X0_MODES = ['none', 'clip', 'dynamic'];
export const DEFAULT_PERCENTILE = 0.995;

function quantile(values, q) {
  // NumPy's default (linear) quantile
  const sorted = Float64Array.from(values).sort();
  const position = q * (sorted.length - 1);
  const lo = Math.floor(position);
  const hi = Math.min(lo + 1, sorted.length - 1);
  const w = position - lo;
  return w >= 0.5 ? sorted[hi] - (sorted[hi] - sorted[lo]) * (1 - w) : sorted[lo] + (sorted[hi] - sorted[lo]) * w;
}

export function thresholdX0(x0, mode = 'none', percentile = DEFAULT_PERCENTILE) {
  if (mode === 'none') return x0;
  if (mode === 'clip') return x0.map((v) => Math.min(Math.max(v, -1), 1));
  if (mode === 'dynamic') {
    const s = Math.max(quantile(x0.map(Math.abs), percentile), 1);
    return x0.map((v) => Math.min(Math.max(v, -s), s) / s);
  }
  throw new Error(`unknown x0 mode ${JSON.stringify(mode)}`);
}

/** x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps, solved for x_0. */
export function x0FromEps(x, eps, alphaBar) {
  const a = Math.sqrt(alphaBar);
  const s = Math.sqrt(1 - alphaBar);
  return x.map((v, i) => (v - s * eps[i]) / a);
}

/** The same relation solved for eps. */
export function epsFromX0(x, x0, alphaBar) {
  const a = Math.sqrt(alphaBar);
  const s = Math.sqrt(1 - alphaBar);
  return x.map((v, i) => (v - a * x0[i]) / s);
}
