// An exported model as the samplers' epsModel(xs, t), through an onnxruntime-web session (the `ort`
// namespace is passed in, so the page and the node tests share this code). Inputs and outputs as
// ddpm_runtime/contract.py declares them: x float32 [B, C, H, W], t float32 [B], y int64 [B] for
// class-conditional models, eps float32 [B, C, H, W].

// The scale the page offers for a class-conditional model whose metadata names none: ddpm_runtime/guidance.py's
// DEFAULT_GUIDANCE_SCALE (tests/web/test_page_defaults.py keeps the two equal).
export const DEFAULT_GUIDANCE_SCALE = 1.5;

function flatten(xs, pixels) {
  const flat = new Float32Array(xs.length * pixels);
  xs.forEach((x, b) => flat.set(x, b * pixels));
  return flat;
}

/** epsModel(xs, t) for the rows' `labels` (class indices, or null: unconditional), with classifier-free
 * guidance scale w as ddpm_runtime/guidance.py: (1 + w) eps(x, c) - w eps(x, no class), both halves from
 * one call on twice the batch. */
export function onnxEpsModel(ort, session, metadata, labels = null, guidanceScale = 0) {
  const { channels, height, width } = metadata.image;
  const pixels = channels * height * width;
  const classes = metadata.classes ?? null;
  if (labels !== null && classes === null) throw new Error('this model is unconditional; it cannot draw a chosen class');
  const run = async (xs, t, ys) => {
    const feeds = {
      x: new ort.Tensor('float32', flatten(xs, pixels), [xs.length, channels, height, width]),
      t: new ort.Tensor('float32', new Float32Array(xs.length).fill(t), [xs.length]),
    };
    if (classes !== null) feeds.y = new ort.Tensor('int64', BigInt64Array.from(ys, BigInt), [xs.length]);
    const { eps } = await session.run(feeds);
    const data = eps.data;
    return xs.map((_, b) => data.subarray(b * pixels, (b + 1) * pixels));
  };
  return async (xs, t) => {
    const own = labels ?? xs.map(() => classes?.null_index ?? 0);
    if (labels === null || guidanceScale === 0) return run(xs, t, own);
    const both = await run([...xs, ...xs], t, [...own, ...own.map(() => classes.null_index)]);
    return xs.map((_, b) => {
      const c = both[b];
      const u = both[xs.length + b];
      return Float64Array.from(c, (v, i) => (1 + guidanceScale) * v - guidanceScale * u[i]);
    });
  };
}
