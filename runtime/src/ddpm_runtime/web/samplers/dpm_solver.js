// DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), the step of ddpm_runtime/samplers/dpm_solver.py.

/** alpha_t, sigma_t, sigma_t / sigma_s and h = lambda_t - lambda_s of a step from s to t (alpha_bar_t < 1). */
export function lambdaStep(alphaBarS, alphaBarT) {
  const alphaS = Math.sqrt(alphaBarS);
  const sigmaS = Math.sqrt(1 - alphaBarS);
  const alphaT = Math.sqrt(alphaBarT);
  const sigmaT = Math.sqrt(1 - alphaBarT);
  return { alphaT, sigmaT, ratio: sigmaT / sigmaS, h: Math.log(alphaT / sigmaT) - Math.log(alphaS / sigmaS) };
}

/** From s to t for one image, with its x_0 estimate and the previous one (or null); returns [x_t, h]. */
export function dpmSolver2mStep(x, x0, x0Prev, alphaBarS, alphaBarT, hPrev) {
  if (alphaBarT >= 1) return [x0, Infinity]; // onto the clean image, first order
  const { alphaT, ratio, h } = lambdaStep(alphaBarS, alphaBarT);
  const second = x0Prev !== null && hPrev !== null;
  const r = second ? hPrev / h : 1;
  const c0 = second ? 1 + 1 / (2 * r) : 1;
  const c1 = second ? 1 / (2 * r) : 0;
  const pull = -alphaT * Math.expm1(-h);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const d = second ? c0 * x0[i] - c1 * x0Prev[i] : x0[i];
    out[i] = ratio * x[i] + pull * d;
  }
  return [out, h];
}
