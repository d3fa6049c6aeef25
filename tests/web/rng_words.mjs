// Prints, for each entropy pair given as JSON on argv[2], the first PCG64 words and normals of rng.js.
import { NormalGenerator, PCG64 } from '../../runtime/src/ddpm_runtime/web/rng.js';

const { entropies, words, normals } = JSON.parse(process.argv[2]);
const out = entropies.map((entropy) => {
  const gen = new PCG64(entropy);
  return {
    words: Array.from({ length: words }, () => gen.next64().toString()),
    normals: Array.from(new NormalGenerator(entropy).standardNormal(normals)),
  };
});
console.log(JSON.stringify(out));
