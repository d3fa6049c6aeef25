// The noise schedule from a model's metadata ("schedule"), as ddpm_runtime/schedule.py computes it:
// float64 tables of length T indexed by t = 0..T-1, and alpha_bar between integers with log(alpha_bar)
// linear in t (DPM-Solver's discrete-time NoiseScheduleVP).

function linspace(start, stop, num) {
  // NumPy's linspace: start + i * step, the last value exactly stop
  const out = new Float64Array(num);
  const step = (stop - start) / (num - 1);
  for (let i = 0; i < num; i++) out[i] = start + i * step;
  if (num > 1) out[num - 1] = stop;
  return out;
}

function linearBetas(cfg) {
  return linspace(cfg.beta_start, cfg.beta_end, cfg.num_timesteps);
}

function cosineBetas(cfg) {
  // Nichol and Dhariwal 2021, eq. 17, betas clipped at 0.999
  const T = cfg.num_timesteps;
  const f = (i) => Math.cos(((i / T + cfg.cosine_s) / (1 + cfg.cosine_s)) * (Math.PI / 2)) ** 2;
  const f0 = f(0);
  const betas = new Float64Array(T);
  for (let i = 0; i < T; i++) betas[i] = Math.min(Math.max(1 - f(i + 1) / f0 / (f(i) / f0), 0), 0.999);
  return betas;
}

export class NoiseSchedule {
  constructor(config) {
    const kind = config.kind ?? 'linear';
    if (kind !== 'linear' && kind !== 'cosine') throw new Error(`unknown schedule kind ${JSON.stringify(kind)}`);
    this.config = { kind, ...config };
    this.numTimesteps = config.num_timesteps;
    const betas = kind === 'linear' ? linearBetas(config) : cosineBetas(config);
    this.alphaBars = new Float64Array(betas.length);
    let product = 1;
    for (let i = 0; i < betas.length; i++) {
      product *= 1 - betas[i];
      this.alphaBars[i] = product;
    }
    this.logAlphaBars = this.alphaBars.map(Math.log);
  }

  /** alpha_bar at t in [0, T-1]: the table at integers, log-linear between them. */
  alphaBarAt(t) {
    if (!(t >= 0 && t <= this.numTimesteps - 1)) throw new Error(`timestep ${t} outside [0, ${this.numTimesteps - 1}]`);
    const i = Math.floor(t);
    if (i === t) return this.alphaBars[i];
    const w = t - i;
    return Math.exp(this.logAlphaBars[i] + w * (this.logAlphaBars[i + 1] - this.logAlphaBars[i]));
  }

  /** lambda_t = log(alpha_t / sigma_t) = 0.5 (log alpha_bar - log(1 - alpha_bar)). */
  logSnr(t) {
    const a = this.alphaBarAt(t);
    return 0.5 * (Math.log(a) - Math.log1p(-a));
  }
}
