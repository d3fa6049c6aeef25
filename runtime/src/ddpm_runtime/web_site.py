"""``ddpm-run web``: a self-contained static site that samples from one model in the browser.

The folder holds ``index.html``, the page's JavaScript (``ddpm_runtime/web/``: the same maths as the
NumPy samplers, checked against them in tests/web), the model as ``model.onnx``, and the onnxruntime-web
files it needs under ``ort/``, copied from an installed npm package (``npm install onnxruntime-web``;
nothing is fetched here, and the page loads nothing from another origin). The folder is built beside
``out`` and renamed onto it, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib.resources import files
from pathlib import Path

from .errors import UserError
from .files import write_error

# The bundle with both the WebAssembly (CPU) and the WebGPU backends, and the one runtime it loads.
ORT_FILES = ("ort.min.mjs", "ort-wasm-simd-threaded.jsep.mjs", "ort-wasm-simd-threaded.jsep.wasm")
ORT_PACKAGE = "onnxruntime-web"
SERVE_HINT = (
    "ddpm-run serve {out}   (with the COOP/COEP headers WebAssembly threads need; any static host also works, "
    "single-threaded, e.g. python -m http.server -d {out})"
)


# The newest opset whose ops onnxruntime-web's WebGPU backend (1.30) has kernels for; ddpm-export's
# TARGET_OPSETS["web"] (the runtime does not import the export package) and app.js's WEBGPU_MAX_OPSET.
WEBGPU_MAX_OPSET = 21


def webgpu_note(opset: int | None) -> str | None:
    """What a user should know about the page's WebGPU backend for a model of this opset, if anything."""
    if opset is None or opset <= WEBGPU_MAX_OPSET:
        return None
    return (
        f"opset {opset}: onnxruntime-web's WebGPU backend has no kernels for its convolutions and attention, "
        "so on WebGPU they run on the CPU; for WebGPU export with `ddpm export-onnx --target web` "
        f"(opset {WEBGPU_MAX_OPSET}). WebAssembly runs either."
    )


def find_onnxruntime_web(given: Path | None, start: Path) -> Path:
    """The onnxruntime-web package folder: ``given``, or node_modules/onnxruntime-web in ``start`` or a
    folder above it (where npm installs it)."""
    candidates = [given] if given is not None else [p / "node_modules" / ORT_PACKAGE for p in (start, *start.parents)]
    for folder in candidates:
        if (folder / "package.json").is_file() and all((folder / "dist" / name).is_file() for name in ORT_FILES):
            return folder
    if given is not None:
        missing = [name for name in ORT_FILES if not (given / "dist" / name).is_file()]
        raise UserError(f"{given}: not an onnxruntime-web package folder (no dist/{missing[0] if missing else ''})")
    raise UserError(
        f"onnxruntime-web not found in node_modules here or above {start}: run `npm install {ORT_PACKAGE}` "
        "(or pass --onnxruntime-web PATH/TO/node_modules/onnxruntime-web)"
    )


def page_files() -> list[tuple[str, object]]:
    """(path in the site, resource) for index.html and every JavaScript module of the page."""
    root = files("ddpm_runtime") / "web"
    out = []
    for folder, prefix in ((root, ""), (root / "samplers", "samplers/")):
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name.endswith((".js", ".html")):
                out.append((prefix + entry.name, entry))
    return out


def build_site(model: Path, out: Path, ort_package: Path, overwrite: bool = False) -> dict:
    """Write the site for ``model`` (already checked by the caller) to ``out``; returns what it holds."""
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists and is not empty (pass --overwrite to replace it)")
    ort_version = json.loads((ort_package / "package.json").read_text())["version"]
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".{out.name}.", suffix=".tmp"))
    except OSError as exc:
        raise UserError(write_error(parent, exc)) from None
    try:
        (staging / "samplers").mkdir()
        (staging / "ort").mkdir()
        for name, resource in page_files():
            (staging / name).write_bytes(resource.read_bytes())
        shutil.copyfile(model, staging / "model.onnx")
        for name in ORT_FILES:
            shutil.copyfile(ort_package / "dist" / name, staging / "ort" / name)
        manifest = {"model": model.name, "onnxruntime_web": ort_version, "files": sorted(
            str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())}  # fmt: skip
        (staging / "site.json").write_text(json.dumps(manifest, indent=1) + "\n")
        old = None
        if out.exists():  # moved aside, not deleted, until the new site is in place
            old = parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
        os.replace(staging, out)
        if old is not None:
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(write_error(out, exc)) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest
