// Where a sampler's model calls fall in t: ddpm_runtime/timesteps.py's spacings (trailing, logsnr,
// karras), descending from T-1, and the model's own fitted times when its metadata has them.

export const SPACINGS = ['trailing', 'logsnr', 'karras'];
export const DEFAULT_RHO = 7;
// timesteps.py's SIGMA_MAX: the logsnr and karras spreads start at sigma = min(sigma(T-1), SIGMA_MAX)
export const SIGMA_MAX = 160;

export function trailing(T, steps) {
  if (!Number.isInteger(steps) || steps < 1 || steps > T) throw new Error(`steps must be between 1 and T=${T}, got ${steps}`);
  // NumPy's round(arange(T, 0, -T / steps)) - 1: arange's start + i * step, rounded half to even
  const step = -T / steps;
  const out = [];
  for (let i = 0; i < steps; i++) out.push(roundHalfEven(T + i * step) - 1);
  return out;
}

function roundHalfEven(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function interp(x, xs, ys) {
  // NumPy's interp for increasing xs, clamped at the ends
  if (x <= xs[0]) return ys[0];
  if (x >= xs[xs.length - 1]) return ys[ys.length - 1];
  let lo = 0;
  let hi = xs.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= x) lo = mid;
    else hi = mid;
  }
  const slope = (ys[hi] - ys[lo]) / (xs[hi] - xs[lo]);
  return slope * (x - xs[lo]) + ys[lo];
}

/** The times whose lambda is each of these: the exact inverse of the schedule's log-linear alpha_bar. */
export function timesOfLambdas(schedule, lambdas) {
  const T = schedule.numTimesteps;
  const table = Array.from(schedule.logAlphaBars).reverse();
  const steps = Array.from({ length: T }, (_, i) => T - 1 - i);
  return lambdas.map((lambda) => interp(-Math.log1p(Math.exp(-2 * lambda)), table, steps));
}

export function samplingTimesteps(schedule, steps, spacing = 'trailing', rho = DEFAULT_RHO) {
  if (!SPACINGS.includes(spacing)) throw new Error(`unknown spacing ${JSON.stringify(spacing)}`);
  const T = schedule.numTimesteps;
  const even = trailing(T, steps);
  if (spacing === 'trailing' || steps === 1) return even;
  const lambdaMax = schedule.logSnr(0);
  const lambdaMin = Math.max(schedule.logSnr(T - 1), -Math.log(SIGMA_MAX));
  const ramp = Array.from({ length: steps }, (_, i) => (i === steps - 1 ? 1 : i * (1 / (steps - 1))));
  let lambdas;
  if (spacing === 'logsnr') {
    const step = (lambdaMax - lambdaMin) / (steps - 1);
    lambdas = ramp.map((_, i) => (i === steps - 1 ? lambdaMax : lambdaMin + i * step));
  } else {
    if (!(rho > 0)) throw new Error(`rho must be positive, got ${rho}`);
    const hi = Math.exp(-lambdaMin) ** (1 / rho);
    const lo = Math.exp(-lambdaMax) ** (1 / rho);
    lambdas = ramp.map((r) => -Math.log((hi + r * (lo - hi)) ** rho));
  }
  const times = timesOfLambdas(schedule, lambdas);
  times[0] = T - 1;
  times[times.length - 1] = 0;
  return times;
}
