// NumPy's default_rng([seed, i]).standard_normal(n), in plain JavaScript, so that the page draws the very
// images `ddpm-run sample --seed S` draws (ddpm_runtime/noise.py: image i gets default_rng([S, i])).
//
// Three pieces, each as NumPy (>= 1.17) defines it: SeedSequence turns the entropy [S, i] into 128-bit
// words; PCG64 (XSL-RR output of a 128-bit LCG) makes 64-bit words from them; the standard normal is the
// 256-layer ziggurat of Marsaglia and Tsang (2000) with NumPy's bit layout (8 bits of layer, 1 of sign,
// 52 of magnitude) and its tail and wedge tests. tests/web checks the words and the normals against NumPy.

const MASK32 = 0xffffffff;
const MASK64 = (1n << 64n) - 1n;
const MASK128 = (1n << 128n) - 1n;

// SeedSequence's hashing constants (O'Neill's seed_seq_fe, as NumPy's bit_generator.pyx uses them).
const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const POOL_SIZE = 4;

function uint32Words(value) {
  // A non-negative integer as little-endian 32-bit words; 0 is one word [0].
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`seed entropy must be a safe integer >= 0, got ${value}`);
  const words = [];
  let rest = BigInt(value);
  do {
    words.push(Number(rest & 0xffffffffn));
    rest >>= 32n;
  } while (rest > 0n);
  return words;
}

/** SeedSequence(entropy).generate_state(nWords64, uint64) as BigInts. */
export function seedSequenceState(entropy, nWords64) {
  const words = entropy.flatMap(uint32Words);
  let hashConst = INIT_A;
  const hashmix = (value) => {
    value = (value ^ hashConst) >>> 0;
    hashConst = Math.imul(hashConst, MULT_A) >>> 0;
    value = Math.imul(value, hashConst) >>> 0;
    return (value ^ (value >>> 16)) >>> 0;
  };
  const mix = (x, y) => {
    const result = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
    return (result ^ (result >>> 16)) >>> 0;
  };
  const pool = new Array(POOL_SIZE);
  for (let i = 0; i < POOL_SIZE; i++) pool[i] = hashmix(i < words.length ? words[i] : 0);
  for (let src = 0; src < POOL_SIZE; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) {
      if (src !== dst) pool[dst] = mix(pool[dst], hashmix(pool[src]));
    }
  }
  for (let src = POOL_SIZE; src < words.length; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) pool[dst] = mix(pool[dst], hashmix(words[src]));
  }
  let hashB = INIT_B;
  const out32 = [];
  for (let i = 0; i < 2 * nWords64; i++) {
    let value = (pool[i % POOL_SIZE] ^ hashB) >>> 0;
    hashB = Math.imul(hashB, MULT_B) >>> 0;
    value = Math.imul(value, hashB) >>> 0;
    out32.push((value ^ (value >>> 16)) >>> 0);
  }
  const out = [];
  for (let i = 0; i < nWords64; i++) out.push(BigInt(out32[2 * i]) | (BigInt(out32[2 * i + 1]) << 32n));
  return out;
}

const PCG_MULT = 0x2360ed051fc65da44385df649fccf645n; // PCG's default 128-bit multiplier

/** PCG64 as NumPy seeds it from SeedSequence(entropy): next64() gives its random_raw() words. */
export class PCG64 {
  constructor(entropy) {
    const [s0, s1, i0, i1] = seedSequenceState(entropy, 4);
    const initState = (s0 << 64n) | s1;
    const initSeq = (i0 << 64n) | i1;
    this.inc = ((initSeq << 1n) | 1n) & MASK128;
    this.state = 0n;
    this.step();
    this.state = (this.state + initState) & MASK128;
    this.step();
  }

  step() {
    this.state = (this.state * PCG_MULT + this.inc) & MASK128;
  }

  next64() {
    // XSL-RR: the high and low halves xor-ed, rotated right by the state's top 6 bits
    this.step();
    const xored = ((this.state >> 64n) ^ this.state) & MASK64;
    const rot = this.state >> 122n;
    return ((xored >> rot) | (xored << ((64n - rot) & 63n))) & MASK64;
  }

  nextDouble() {
    return Number(this.next64() >> 11n) * 2 ** -53;
  }
}

// The ziggurat's 256 layers for the standard normal: the right edge r of the base layer and the common
// area v of every layer (Marsaglia and Tsang 2000, section 4), and the tables built from them as their
// zigset builds them, scaled to NumPy's 52-bit magnitudes.
const ZIG_R = 3.6541528853610088;
const ZIG_INV_R = 1 / ZIG_R;
const ZIG_V = 0.004928673233974658; // r f(r) + the tail integral sqrt(pi/2) erfc(r / sqrt 2)
const SCALE = 2 ** 52;

function zigguratTables() {
  const ki = new Float64Array(256); // integers below 2^52, exact in doubles
  const wi = new Float64Array(256);
  const fi = new Float64Array(256);
  let dn = ZIG_R;
  let tn = dn;
  const q = ZIG_V / Math.exp(-0.5 * dn * dn);
  ki[0] = Math.floor((dn / q) * SCALE);
  ki[1] = 0;
  wi[0] = q / SCALE;
  wi[255] = dn / SCALE;
  fi[0] = 1;
  fi[255] = Math.exp(-0.5 * dn * dn);
  for (let i = 254; i >= 1; i--) {
    dn = Math.sqrt(-2 * Math.log(ZIG_V / dn + Math.exp(-0.5 * dn * dn)));
    ki[i + 1] = Math.floor((dn / tn) * SCALE);
    tn = dn;
    fi[i] = Math.exp(-0.5 * dn * dn);
    wi[i] = dn / SCALE;
  }
  return { ki, wi, fi };
}

const { ki: KI, wi: WI, fi: FI } = zigguratTables();
const MAGNITUDE = (1n << 52n) - 1n;

/** One N(0, 1) draw, NumPy's random_standard_normal on this generator. */
export function standardNormal(gen) {
  for (;;) {
    let r = gen.next64();
    const idx = Number(r & 0xffn);
    r >>= 8n;
    const negative = (r & 1n) === 1n;
    const rabsBig = (r >> 1n) & MAGNITUDE;
    const rabs = Number(rabsBig);
    let x = rabs * WI[idx];
    if (negative) x = -x;
    if (rabs < KI[idx]) return x; // inside the layer's rectangle: 99.3% of draws
    if (idx === 0) {
      // the tail beyond r (Marsaglia 1964), with 1 - U as NumPy takes it
      for (;;) {
        const xx = -ZIG_INV_R * Math.log1p(-gen.nextDouble());
        const yy = -Math.log1p(-gen.nextDouble());
        if (yy + yy > xx * xx) return ((rabsBig >> 8n) & 1n) === 1n ? -(ZIG_R + xx) : ZIG_R + xx;
      }
    }
    // the wedge between layer idx and the curve
    if ((FI[idx - 1] - FI[idx]) * gen.nextDouble() + FI[idx] < Math.exp(-0.5 * x * x)) return x;
  }
}

/** default_rng(entropy).standard_normal(count) as a Float64Array. */
export class NormalGenerator {
  constructor(entropy) {
    this.gen = new PCG64(entropy);
  }

  standardNormal(count) {
    const out = new Float64Array(count);
    for (let i = 0; i < count; i++) out[i] = standardNormal(this.gen);
    return out;
  }
}
