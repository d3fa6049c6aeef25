"""ddpm export-generator: a model file and a sampler as one ONNX graph from noise to images.

The generator's images are checked against the runtime's NumPy samplers run on the plain model file
from the same (float32) noise: at least 99.9% of pixels equal, the rest one grey level apart, for every
sampler of the registry, a class-conditional model with guidance, and ddpm-run sample's own path.
"""

from __future__ import annotations

import numpy as np
import pytest

from ddpm_export.generator import export_generator
from ddpm_export.generator.build import GeneratorRequest
from ddpm_export.generator.gate import MIN_EQUAL, compare, noise_for, reference_images
from ddpm_runtime.generator_model import load_generator
from ddpm_runtime.guidance import DEFAULT_GUIDANCE_SCALE
from ddpm_runtime.onnx_model import load_onnx_model

from cli_helpers import error_lines, run_ddpm, run_ddpm_run

# every sampler of the registry at a few calls, and the options that change the graph's shape
CASES = [
    ("ddpm", 4, {}),
    ("ddpm", 3, {"x0": "clip"}),
    ("ddim", 4, {}),
    ("ddim", 4, {"eta": 0.5, "x0": "dynamic"}),
    ("dpm-solver++", 4, {}),
    ("dpm-solver++", 4, {"final": "step", "x0": "none"}),
    ("dpm-solver++-sde", 5, {}),
    ("dpm-solver++3m", 6, {}),
    ("consistency", 3, {}),
    ("consistency", 1, {}),
]
DRAWS = {"ddpm": lambda n, o: n - 1, "dpm-solver++-sde": lambda n, o: n - 1, "consistency": lambda n, o: n - 1}


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    difference = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return float(np.mean(difference == 0)), int(difference.max())


@pytest.mark.parametrize(("sampler", "steps", "options"), CASES)
def test_every_sampler_draws_ddpm_runs_images_for_the_same_noise(tiny_onnx, tmp_path, sampler, steps, options):
    out = tmp_path / "generator.onnx"
    result = export_generator(tiny_onnx, out, GeneratorRequest(sampler=sampler, steps=steps, options=options))
    assert result.report.passed and out.is_file()
    generator, model = load_generator(out, "cpu", threads=1), load_onnx_model(tiny_onnx, "cpu", threads=1)
    entry = generator.metadata.generator
    assert (entry.sampler, entry.steps) == (sampler, steps)
    assert all(entry.options[k] == v for k, v in options.items())
    expected_draws = steps if options.get("eta") else DRAWS.get(sampler, lambda n, o: 0)(steps, options)
    assert entry.noise_draws == expected_draws
    # 32 images of 12 x 12: at most 4 of 4,608 pixels may differ, by one grey level
    x_T, step_noise = noise_for(generator, 32, seed=3)
    drawn = generator.draw(x_T, step_noise)
    equal, worst = agreement(drawn, reference_images(model, generator, x_T, step_noise, None, None))
    assert equal >= MIN_EQUAL and worst <= 1, (equal, worst)
    # x_0 is the state before the rounding: the images are its uint8 form
    x_0 = generator.session.run(["x_0"], generator.feeds(x_T, step_noise, None, None))[0]
    rounded = np.rint(np.clip((x_0.astype(np.float64) + 1) * 127.5, 0, 255)).astype(np.uint8).transpose(0, 2, 3, 1)
    assert agreement(rounded, drawn)[1] <= 1


def test_the_generator_changes_with_the_noise_it_is_given(tiny_onnx, tmp_path):
    """The noise inputs are used: other step noise gives other images (a graph that ignored them would not)."""
    out = tmp_path / "sde.onnx"
    export_generator(tiny_onnx, out, GeneratorRequest(sampler="dpm-solver++-sde", steps=4))
    generator = load_generator(out, "cpu", threads=1)
    x_T, step_noise = noise_for(generator, 4)
    first = generator.draw(x_T, step_noise)
    assert not np.array_equal(first, generator.draw(x_T, step_noise[::-1].copy()))
    assert not np.array_equal(first, generator.draw(-x_T, step_noise))


def test_defaults_are_what_ddpm_run_sample_uses_and_ddpm_run_samples_a_generator(capsys, tiny_onnx, tmp_path):
    out = tmp_path / "generator.onnx"
    made = run_ddpm(capsys, "export-generator", tiny_onnx, "-o", out)
    assert made.code == 0, made.err
    assert "dpm-solver++-sde, 20 calls, 19 noise draws" in made.out and "of pixels equal" in made.out
    entry = load_generator(out, "cpu", threads=1).metadata.generator
    assert (entry.sampler, entry.steps, entry.options["x0"]) == ("dpm-solver++-sde", 20, "none")
    for path, folder in ((out, "from-generator"), (tiny_onnx, "from-model")):
        args = ("-n", "12", "--seed", "5", "--batch-size", "5", "--threads", "1", "--out", tmp_path / folder)
        sampled = run_ddpm_run(capsys, "sample", path, *args)
        assert sampled.code == 0, sampled.err
    a, b = (np.load(tmp_path / folder / "samples.npz")["arr_0"] for folder in ("from-generator", "from-model"))
    equal, worst = agreement(a, b)  # float32 noise in the generator, float64 in ddpm-run's own sampler
    assert a.shape == (12, 12, 12, 1) and equal >= MIN_EQUAL and worst <= 1
    # the rows split over one single-threaded session per core (the CPU default), each share in calls of
    # at most row_split.CALL_ROWS rows, draw the same images
    split = load_generator(out, "cpu")
    x_T, step_noise = noise_for(split, 11)
    one = load_generator(out, "cpu", threads=1)
    assert np.array_equal(split.draw(x_T, step_noise), one.draw(x_T, step_noise))
    info = run_ddpm_run(capsys, "info", out)
    assert "generator:  noise to images with dpm-solver++-sde, 20 calls" in info.out
    assert "inputs x_T, step_noise (19 draws)" in info.out
    refused = run_ddpm_run(capsys, "sample", out, "--steps", "10", "--out", tmp_path / "other")
    assert refused.code == 2 and "built in; --steps 10 needs the model file" in error_lines(refused)[0]
    assert not (tmp_path / "other" / "samples.npz").exists()


def graphs_of(graph) -> list:
    """``graph`` and every graph its nodes hold (a Loop's body), depth first."""
    found = [graph]
    for node in graph.node:
        for attribute in node.attribute:
            for inner in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                found += graphs_of(inner)
    return found


def test_weights_are_stored_once_however_many_calls(tiny_onnx, tmp_path):
    import onnx

    model = onnx.load(str(tiny_onnx))
    weights = sum(t.ByteSize() for t in model.graph.initializer)
    sizes = {}
    for steps in (2, 20):
        out = tmp_path / f"g{steps}.onnx"
        export_generator(tiny_onnx, out, GeneratorRequest(sampler="dpm-solver++", steps=steps))
        graphs = graphs_of(onnx.load(str(out)).graph)
        # the sampler's constants are scalars
        big = [t for graph in graphs for t in graph.initializer if t.ByteSize() > 256]
        assert sum(t.ByteSize() for t in big) <= weights and len(big) == len(
            [t for t in model.graph.initializer if t.ByteSize() > 256]
        )
        sizes[steps] = sum(len(graph.node) for graph in graphs)
    assert sizes[20] > 9 * sizes[2]  # one copy of the network's nodes per call


def test_rows_run_in_chunks_of_a_loop_and_any_batch_size_draws_the_same_images(tiny_onnx, tmp_path):
    """The graph is a Loop over CHUNK_ROWS-row chunks: a batch that is not a multiple of it (two full
    chunks and a short one) draws what the rows draw one at a time, and no rows give empty outputs."""
    import onnx

    from ddpm_export.generator.row_chunks import CHUNK_ROWS

    out = tmp_path / "generator.onnx"
    export_generator(tiny_onnx, out, GeneratorRequest(sampler="dpm-solver++-sde", steps=3))
    assert [node.op_type for node in onnx.load(str(out)).graph.node][-1] == "Loop"
    generator = load_generator(out, "cpu", threads=1)
    x_T, step_noise = noise_for(generator, 2 * CHUNK_ROWS + 3, seed=4)
    together = generator.draw(x_T, step_noise)
    alone = [generator.draw(x_T[i : i + 1], step_noise[:, i : i + 1].copy()) for i in range(len(x_T))]
    assert together.shape == (len(x_T), 12, 12, 1) and np.array_equal(together, np.concatenate(alone))
    images, x_0 = generator.session.run(None, generator.feeds(x_T[:0], step_noise[:, :0], None, None))
    assert images.shape == (0, 12, 12, 1) and images.dtype == np.uint8 and x_0.shape == (0, 1, 12, 12)


def test_a_weight_changed_inside_the_loop_is_caught_when_the_file_opens(capsys, tiny_onnx, tmp_path):
    """The weights live in the Loop's body; the digest in the metadata covers them there too."""
    import onnx
    from onnx import numpy_helper

    out = tmp_path / "generator.onnx"
    export_generator(tiny_onnx, out, GeneratorRequest(sampler="ddim", steps=2))
    body = graphs_of(onnx.load(str(out)).graph)[1]
    initializer = max(body.initializer, key=lambda i: len(numpy_helper.to_array(i).ravel()))
    data = bytearray(out.read_bytes())
    at = data.find(initializer.raw_data)
    assert at >= 0 and len(initializer.raw_data) > 16
    data[at + len(initializer.raw_data) // 2] ^= 0x01  # one weight's low mantissa bit
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(bytes(data))
    result = run_ddpm_run(capsys, "info", damaged)
    assert result.code == 2 and "its weights do not match the digest in its metadata: damaged" in result.err
    assert run_ddpm_run(capsys, "info", out).code == 0


def optimized_op_types(path, out) -> list[str]:
    """The operators ONNX Runtime runs for the file at ``path``, after its load-time optimisations."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath, options.log_severity_level = str(out), 3
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [node.op_type for graph in graphs_of(onnx.load(str(out)).graph) for node in graph.node]


@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "conditional"])
def test_each_calls_time_path_is_folded_when_the_file_loads(request, tmp_path, conditional):
    """Every call's time is one constant row, so ONNX Runtime computes the time features (Sin, Cos) and
    the time MLP once at load: none of them runs per image, unlike in the plain model file."""
    model = request.getfixturevalue("tiny_conditional_onnx" if conditional else "tiny_onnx")
    out = tmp_path / "generator.onnx"
    export_generator(model, out, GeneratorRequest(sampler="ddim", steps=3))
    plain = optimized_op_types(model, tmp_path / "plain-optimized.onnx")
    generator = optimized_op_types(out, tmp_path / "generator-optimized.onnx")
    assert "Sin" in plain and "Cos" in plain
    assert "Sin" not in generator and "Cos" not in generator


def test_conditional_generator_takes_classes_and_a_guidance_scale(tiny_conditional_onnx, tmp_path):
    out = tmp_path / "conditional.onnx"
    result = export_generator(tiny_conditional_onnx, out, GeneratorRequest(steps=6))  # the default sampler, fewer calls
    assert result.report.passed
    generator, model = load_generator(out, "cpu", threads=1), load_onnx_model(tiny_conditional_onnx, "cpu", threads=1)
    assert generator.metadata.generator.guidance_scale == DEFAULT_GUIDANCE_SCALE
    x_T, step_noise = noise_for(generator, 12, seed=1)
    labels = np.array([0, 1, 2, 3] * 3, dtype=np.int64)  # 3: "no class"
    drawn = {}
    for scale in (0.0, DEFAULT_GUIDANCE_SCALE, 3.0):
        drawn[scale] = generator.draw(x_T, step_noise, labels, scale)
        expected = reference_images(model, generator, x_T, step_noise, labels, scale)
        equal, worst = agreement(drawn[scale], expected)
        assert equal >= MIN_EQUAL and worst <= 1, (scale, equal, worst)
    assert not np.array_equal(drawn[0.0], drawn[3.0])
    # the scale may be left out: the initializer holds the model's default
    feeds = generator.feeds(x_T, step_noise, labels, None)
    del feeds["guidance_scale"]
    assert np.array_equal(generator.session.run(["images"], feeds)[0], drawn[DEFAULT_GUIDANCE_SCALE])


def test_generator_converts_to_the_ort_format_and_draws_the_same(tiny_onnx, tmp_path):
    """ONNX Runtime Mobile's format: the .ort file loads in the Python runtime and draws the same images."""
    import subprocess
    import sys

    out = tmp_path / "generator.onnx"
    export_generator(tiny_onnx, out, GeneratorRequest(sampler="dpm-solver++-sde", steps=4))
    converted = subprocess.run(
        [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert converted.returncode == 0, converted.stderr[-2000:]
    ort_file = tmp_path / "generator.ort"
    operators = (tmp_path / "generator.required_operators.config").read_text()
    # the network's operators and the generator's own (IsNaN, Round: the uint8 images); TopK only for --x0 dynamic
    assert all(op in operators for op in ("Conv", "IsNaN", "Round")) and "TopK" not in operators
    generator, mobile = load_generator(out, "cpu", threads=1), load_generator(ort_file, "cpu", threads=1)
    assert mobile.metadata.generator == generator.metadata.generator
    x_T, step_noise = noise_for(generator, 6)
    assert np.array_equal(mobile.draw(x_T, step_noise), generator.draw(x_T, step_noise))


def test_refusals_are_one_line_errors_and_write_nothing(capsys, tiny_onnx, tmp_path):
    made = tmp_path / "generator.onnx"
    assert run_ddpm(capsys, "export-generator", tiny_onnx, "-o", made, "--steps", "3").code == 0
    plain = tmp_path / "plain.onnx"
    import onnx

    proto = onnx.load(str(tiny_onnx))
    del proto.metadata_props[:]
    onnx.save(proto, str(plain))
    out = tmp_path / "out.onnx"
    cases = [
        ((made, "-o", out), "is already a generator file"),
        ((plain, "-o", out), "has no 'ddpm' metadata"),
        ((tiny_onnx, "-o", out, "--steps", "0"), "--steps must be at least 1, got 0"),
        ((tiny_onnx, "-o", out, "--sampler", "ddpm", "--eta", "0.5"), "--eta does not apply to the ddpm sampler"),
        ((tiny_onnx, "-o", out, "--sampler", "ddim", "--final", "step"), "--final does not apply to the ddim sampler"),
        ((tiny_onnx, "-o", out, "--sampler", "nope"), "unknown sampler 'nope'"),
        ((tiny_onnx, "-o", made), "exists (pass --overwrite to replace it)"),
        ((tmp_path / "missing.onnx", "-o", out), "no such model file"),
    ]
    before = made.read_bytes()
    for args, message in cases:
        result = run_ddpm(capsys, "export-generator", *args)
        lines = error_lines(result)
        assert result.code == 2 and len(lines) == 1 and message in lines[0], (args, result.err)
        assert "Traceback" not in result.err
    assert not out.exists() and made.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generator.onnx", "plain.onnx"]
    eps = run_ddpm_run(capsys, "sample", made, "--sampler", "ddim", "--out", tmp_path / "s")
    assert eps.code == 2 and "--sampler ddim needs the model file it was made from" in error_lines(eps)[0]


def test_a_generator_that_disagrees_is_not_kept(tiny_onnx, tmp_path, monkeypatch):
    """The gate compares with ddpm-run: a graph that draws other images exits 1 and leaves no file."""
    from ddpm_export import generator as package
    from ddpm_export.generator import GeneratorMismatch

    real_compare = package.compare

    def shifted(model, generator, *args, **kwargs):
        draw = generator.draw
        generator.draw = lambda *a, **k: np.minimum(draw(*a, **k).astype(np.int16) + 2, 255).astype(np.uint8)
        return real_compare(model, generator, *args, **kwargs)

    monkeypatch.setattr(package, "compare", shifted)
    out = tmp_path / "generator.onnx"
    with pytest.raises(GeneratorMismatch, match="nothing written"):
        export_generator(tiny_onnx, out, GeneratorRequest(steps=3))
    assert list(tmp_path.iterdir()) == []


def test_the_command_exits_1_when_the_gate_fails(capsys, tiny_onnx, tmp_path, monkeypatch):
    from ddpm_export import generator as package
    from ddpm_export.generator.gate import GateReport

    monkeypatch.setattr(package, "compare", lambda *a, **k: GateReport(images=8, equal=0.99, max_difference=3))
    result = run_ddpm(capsys, "export-generator", tiny_onnx, "-o", tmp_path / "g.onnx", "--steps", "2")
    assert result.code == 1 and "generator check failed" in error_lines(result)[0] and "99.0000%" in result.err
    assert list(tmp_path.iterdir()) == []


def test_generator_library_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, ddpm_export.generator; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_gate_report_counts_pixels(tiny_onnx, tmp_path):
    out = tmp_path / "g.onnx"
    export_generator(tiny_onnx, out, GeneratorRequest(sampler="ddim", steps=2))
    report = compare(load_onnx_model(tiny_onnx, "cpu", threads=1), load_generator(out, "cpu", threads=1), count=3)
    assert report.images == 3 and report.passed and "3 images against ddpm-run's sampler" in report.describe()
