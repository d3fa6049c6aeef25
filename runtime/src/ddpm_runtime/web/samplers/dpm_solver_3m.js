// DPM-Solver++(3M) (Lu et al. 2022), the step of ddpm_runtime/samplers/dpm_solver_3m.py, with the
// reference code's coefficients (see that file for why its D'' is half the Taylor term).
import { lambdaStep } from './dpm_solver.js';

/** The third-order step from s to t (< s) for one image; returns [x_t, h]. */
export function dpmSolver3mStep(x, x0, x0Prev, x0Prev2, alphaBarS, alphaBarT, hPrev, hPrev2) {
  const { alphaT, ratio, h } = lambdaStep(alphaBarS, alphaBarT);
  const r0 = hPrev / h;
  const r1 = hPrev2 / h;
  const phi1 = Math.expm1(-h);
  const phi2 = phi1 / h + 1;
  const phi3 = phi2 / h - 0.5;
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const d10 = (x0[i] - x0Prev[i]) / r0;
    const d11 = (x0Prev[i] - x0Prev2[i]) / r1;
    const first = d10 + (r0 / (r0 + r1)) * (d10 - d11);
    const second = (d10 - d11) / (r0 + r1);
    out[i] = ratio * x[i] - alphaT * phi1 * x0[i] + alphaT * phi2 * first - alphaT * phi3 * second;
  }
  return [out, h];
}

/** The order of the step after each of `numCalls` model calls (the reference's lower_order_final). */
export function stepOrders(numCalls) {
  const orders = [];
  for (let i = 0; i < numCalls - 1; i++) orders.push(Math.min(3, i + 1, numCalls - i));
  orders.push(1);
  return orders;
}
