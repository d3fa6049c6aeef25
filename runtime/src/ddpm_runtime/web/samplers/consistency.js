// Multistep consistency sampling (Song et al. 2023, Algorithm 1), ddpm_runtime/samplers/consistency.py:
// the x_0 estimate noised afresh to the next call's time, or kept at the end.

export function consistencyStep(x0, alphaBarNext, noise) {
  if (alphaBarNext >= 1) return x0;
  if (noise === null) throw new Error('consistencyStep needs noise except on the last step');
  const a = Math.sqrt(alphaBarNext);
  const s = Math.sqrt(1 - alphaBarNext);
  return x0.map((v, i) => a * v + s * noise[i]);
}
