"""The page's random numbers (runtime/.../web/rng.js) against NumPy's: the same seed must give the page
the noise ``ddpm-run sample`` uses (``default_rng([seed, i]).standard_normal``), so its images match."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
NODE = shutil.which("node") or "node"  # `make test` installs Debian's nodejs where it is missing

# Seeds as ddpm-run uses them ([seed, image index]), a seed of two 32-bit words, and a longer entropy.
ENTROPIES = [[0, 0], [0, 1], [1, 0], [3, 7], [12345, 63], [2**32 + 5, 2], [4, 1, 2, 3, 9]]


def js_draws(words: int, normals: int) -> list[dict]:
    request = json.dumps({"entropies": ENTROPIES, "words": words, "normals": normals})
    proc = subprocess.run([NODE, str(HERE / "rng_words.mjs"), request], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_pcg64_words_equal_numpy_bit_for_bit():
    # SeedSequence and PCG64 are integer maths: every word must be identical.
    for entropy, drawn in zip(ENTROPIES, js_draws(words=50, normals=0), strict=True):
        expected = np.random.default_rng(entropy).bit_generator.random_raw(50)
        assert [int(w) for w in drawn["words"]] == [int(w) for w in expected], entropy


def test_standard_normals_equal_numpy_to_rounding():
    # The ziggurat tables are rebuilt in doubles from r and v, so a value may differ from NumPy's in its
    # last bits (measured: 5e-15 at most over 2e5 draws). A different accept/reject path, or a table
    # built wrong, would shift whole draws by O(1) and every later draw with it.
    count = 40_000  # about 300 draws fall in the wedges and tails that take extra words
    for entropy, drawn in zip(ENTROPIES, js_draws(words=0, normals=count), strict=True):
        expected = np.random.default_rng(entropy).standard_normal(count)
        got = np.asarray(drawn["normals"])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, err_msg=str(entropy))
    tails = np.abs(expected) > 3.6541528853610088
    assert tails.any()  # the tail branch ran for at least the last entropy
