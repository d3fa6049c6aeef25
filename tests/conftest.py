"""Session fixtures: generated data files, a tiny trained checkpoint and its ONNX export.

The runtime's tests (tests/runtime/) must also run where torch is not installed: there, the
``tiny_onnx`` fixture takes the file named by $DDPM_TEST_TINY_ONNX (tests/test_runtime_isolated.py
exports it with torch, then runs tests/runtime/ in a torch-free venv with that variable set).
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # data_helpers, cli_helpers, reference/

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n K`: K workers share the machine's cores; one compute thread each (set before torch and
    # ONNX Runtime start their pools, and inherited by the commands tests start) keeps them from
    # spinning against each other. The maths does not depend on the thread count.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")

from data_helpers import idx_bytes, make_checkpoint, make_images

TINY_ONNX_ENV = "DDPM_TEST_TINY_ONNX"
TINY_CONDITIONAL_ONNX_ENV = "DDPM_TEST_TINY_CONDITIONAL_ONNX"


@pytest.fixture(scope="session")
def images() -> np.ndarray:
    return make_images()


@pytest.fixture(scope="session")
def labels(images) -> np.ndarray:
    return (np.arange(len(images)) % 10).astype(np.uint8)


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory, images, labels) -> Path:
    """An MNIST-layout folder: gzipped train images and labels."""
    folder = tmp_path_factory.mktemp("idx")
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    return folder


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    make_checkpoint(path, "tiny", 12, steps=3)
    return path


def exported_model(request, tmp_path_factory, env: str, checkpoint_fixture: str) -> Path:
    """The file named by $``env`` (the torch-free venv), else the checkpoint fixture exported to ONNX
    by the export package (opset 23, parity gate passed)."""
    given = os.environ.get(env)
    if given:
        return Path(given)
    if importlib.util.find_spec("torch") is None:
        pytest.fail(f"no torch here to export the test model: set ${env} to an exported model")
    from ddpm_export.onnx_export import export_onnx
    from ddpm_export.source import load_source

    out = tmp_path_factory.mktemp("onnx") / f"{checkpoint_fixture}.onnx"
    result = export_onnx(load_source(request.getfixturevalue(checkpoint_fixture)), out)
    assert result.report.passed
    return out


@pytest.fixture(scope="session")
def tiny_onnx(request, tmp_path_factory):
    """The tiny checkpoint as an ONNX model (inputs x, t)."""
    return exported_model(request, tmp_path_factory, TINY_ONNX_ENV, "tiny_trained")


@pytest.fixture(scope="session")
def tiny_conditional_trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny-conditional.pt"
    make_checkpoint(path, "tiny", 12, steps=3, conditional=True)
    return path


@pytest.fixture(scope="session")
def tiny_conditional_onnx(request, tmp_path_factory):
    """A class-conditional tiny model (data_helpers.CLASS_NAMES) as an ONNX model (inputs x, t, y)."""
    return exported_model(request, tmp_path_factory, TINY_CONDITIONAL_ONNX_ENV, "tiny_conditional_trained")
