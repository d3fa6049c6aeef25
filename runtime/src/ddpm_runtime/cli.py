"""The ``ddpm-run`` command: sample from an exported ONNX model, or show its metadata. No torch here.

It parses options, calls the library, and turns UserError into one line and exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .class_request import DEFAULT_NUM_IMAGES, DEFAULT_PER_CLASS
from .classes import ALL_CLASSES
from .cli_main import run_cli
from .devices import DEVICES
from .generate import FITTED, SamplingSettings, model_defaults
from .guidance import DEFAULT_GUIDANCE_SCALE
from .jobs import JOB_FOLDER
from .samplers import REGISTRY, all_options
from .timesteps import SPACINGS

_DEFAULTS = SamplingSettings()
_SAMPLER_HELP = "; ".join(f"{spec.name}: {spec.summary}" for spec in REGISTRY.values())
_STEPS_HELP = ", ".join(f"{spec.name} {spec.default_steps or 'T'}" for spec in REGISTRY.values())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ddpm-runtime")
def cli() -> None:
    """Sample from DDPM U-Nets exported by `ddpm export-onnx`, with NumPy and ONNX Runtime."""


def _option_default(name: str) -> str:
    """The default of a sampler option, per sampler where they differ."""
    defaults = {spec.name: o.default for spec in REGISTRY.values() for o in spec.options if o.name == name}
    if len(set(defaults.values())) == 1:
        return str(next(iter(defaults.values())))
    return ", ".join(f"{sampler} {value}" for sampler, value in defaults.items())


def sampler_options(func):
    """One flag per sampler option in the registry; unset flags stay None, so only given ones reach the sampler."""
    for option in reversed(all_options().values()):
        if option.is_flag:
            func = click.option(option.flag, option.name, is_flag=True, default=None, help=option.help)(func)
        else:
            kind = click.Choice(option.choices) if option.choices else type(option.default)
            func = click.option(
                option.flag,
                option.name,
                type=kind,
                default=None,
                help=f"{option.help}  [default: {_option_default(option.name)}]",
            )(func)
    return func


@cli.command("sample")
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "-n",
    "--num-images",
    type=int,
    default=None,
    help=f"Images to draw (without --class).  [default: {DEFAULT_NUM_IMAGES}]",
)
@click.option(
    "--class",
    "classes",
    multiple=True,
    help=f"Class-conditional models: draw this class (a name or an index; repeatable; '{ALL_CLASSES}': every "
    "class). The grid has one class per row. Without it, a conditional model draws with 'no class'.",
)
@click.option(
    "--per-class",
    type=int,
    default=None,
    help=f"Images per --class.  [default: {DEFAULT_PER_CLASS}]",
)
@click.option(
    "--guidance-scale",
    type=float,
    default=None,
    help="Classifier-free guidance w (Ho and Salimans 2022): eps = (1+w) eps(class) - w eps(no class); 0 is "
    f"the plain conditional model, one model call per step.  [default: {DEFAULT_GUIDANCE_SCALE}]",
)
@click.option(
    "--batch-size",
    type=int,
    default=_DEFAULTS.batch_size,
    show_default=True,
    help="Images per model call (with guidance a call holds twice as many rows). The images do not depend on it.",
)
@click.option(
    "--sampler",
    type=click.Choice(list(REGISTRY)),
    default=None,
    help=_SAMPLER_HELP
    + f".  [default: the model's own (a distilled student's, `ddpm-run info`), else {_DEFAULTS.sampler}]",
)
@click.option(
    "--steps",
    type=int,
    default=None,
    help=f"Model calls per image, 1..T.  [default: the model's own for its sampler, else {_STEPS_HELP}]",
)
@click.option(
    "--spacing",
    type=click.Choice((*SPACINGS, FITTED)),
    default=None,
    help="Where the model calls fall in t: even in t from T-1 (trailing), even in log-SNR, Karras et al.'s "
    "sigma ramp, or the model's own fitted times (ddpm fit-schedule); logsnr, karras and fitted end at t = 0.  "
    "[default: fitted where the model has them for the sampler and steps, else "
    + ", ".join(f"{spec.name} {spec.default_spacing}" for spec in REGISTRY.values())
    + "]",
)
@click.option("--rho", type=float, default=_DEFAULTS.rho, show_default=True, help="Exponent of the karras spacing.")
@sampler_options
@click.option("--seed", type=int, default=_DEFAULTS.seed, show_default=True, help="Same seed, same images.")
@click.option(
    "--device",
    type=click.Choice(DEVICES),
    default=DEVICES[0],
    show_default=True,
    help="auto uses CUDAExecutionProvider when ONNX Runtime offers it; cuda without it is an error.",
)
@click.option(
    "--threads",
    type=int,
    default=None,
    help="One ONNX Runtime session with this many intra-op threads.  [default on the CPU: one single-threaded "
    "session per physical core, each running a share of every call's rows at the same time]",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("samples"),
    show_default=True,
    help="Output folder: grid.png, images/, samples.npz (uint8 NHWC, arr_0).",
)
@click.option("--csv", "write_csv", is_flag=True, help="Also write samples.csv in the seed's format (pixel0..).")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an earlier run's grid.png, images/, samples.npz and samples.csv in --out (nothing else).",
)
@click.option(
    "--resume",
    is_flag=True,
    help=f"Continue the stopped job in --out ({JOB_FOLDER}/: its finished batches) with the same model and "
    "options; without a stopped job, start one.",
)
@click.option(
    "--shard",
    default=None,
    help="K/N: sample only shard K of N (contiguous batches) into --out; `ddpm-run merge` joins the N folders "
    "into the outputs of one run.",
)
def sample_command(
    model,
    num_images,
    classes,
    per_class,
    guidance_scale,
    batch_size,
    sampler,
    steps,
    spacing,
    rho,
    seed,
    device,
    threads,
    out,
    write_csv,
    overwrite,
    resume,
    shard,
    **options,
) -> None:
    """Generate images from MODEL (an ONNX file written by `ddpm export-onnx`, or a generator file of
    `ddpm export-generator`, which draws with its built-in sampler: the same seed, the same images)."""
    from .class_request import class_request
    from .folder_lock import FolderLock
    from .generate import batch_ranges, generate_batches
    from .generator_model import check_generator_request, load_model
    from .jobs import Shard, batch_shapes, file_sha256, job_spec, open_job, resample_damaged
    from .outputs import check_output_folder

    given = {name: value for name, value in options.items() if value is not None}
    eps_model = load_model(model, device, threads)  # a model file, or a generator file (its sampler inside)
    sampler, steps, own_options = model_defaults(eps_model.metadata, sampler, steps, str(model))
    given = {**own_options, **given}
    request = class_request(model, eps_model.metadata, num_images, classes, per_class, guidance_scale)
    settings = SamplingSettings(
        num_images=request.num_images,
        batch_size=batch_size,
        sampler=sampler,
        steps=steps,
        seed=seed,
        options=given,
        spacing=spacing,
        rho=rho,
        labels=request.labels,
        guidance_scale=request.guidance_scale,
    )
    num_timesteps = eps_model.metadata.schedule.num_timesteps
    settings.validate(num_timesteps)
    settings.validate_classes(eps_model.metadata, str(model))
    if eps_model.metadata.generator is not None:
        check_generator_request(settings, eps_model.metadata, str(model))
    shard = None if shard is None else Shard.parse(shard)
    check_output_folder(out, overwrite, inputs=[model])
    ranges = batch_ranges(settings.num_images, settings.batch_size)
    outputs = {"labels": request.labels, "columns": request.per_class, "class_names": request.class_names}
    image = eps_model.metadata.image
    spec = job_spec(
        file_sha256(model), settings, outputs, shard, len(ranges), (image.height, image.width, image.channels)
    )
    lock = FolderLock(out).acquire()  # one process per --out: a running job is refused, not taken for stopped
    try:
        job = open_job(out, spec, resume)
        wanted = list(shard.batches(len(ranges)) if shard else range(len(ranges)))
        shapes = batch_shapes(spec)
        for index, reason in resample_damaged(job, {b: shapes[b] for b in wanted}).items():
            click.echo(f"batch {index + 1}: {reason}; sampling it again", err=True)
        todo = [b for b in wanted if b not in job.finished()]
        total_steps = settings.resolved_steps(num_timesteps)
        part = f", shard {shard}: batches {wanted[0] + 1}..{wanted[-1] + 1}" if shard and wanted else ""
        kept = f", {len(wanted) - len(todo)} already done" if len(todo) < len(wanted) else ""
        click.echo(
            f"{model}: {sampler}, {total_steps} steps, {settings.num_images} images in {len(ranges)} batch(es)"
            f"{request.describe()}{part}{kept}, provider {eps_model.provider}{_quantized_note(eps_model.metadata)}",
            err=True,
        )
        progress = _SamplingProgress([len(ranges[b]) for b in todo], total_steps)
        for index, images in generate_batches(eps_model, eps_model.metadata, settings, todo, progress.step):
            job.save(index, images)
            progress.batch_done(index, len(ranges))
        progress.close()
        if shard is not None:
            click.echo(
                f"shard {shard} done: {len(wanted)} batch(es) in {job.folder}; join all shards with `ddpm-run merge`"
            )
            return
        _write_job_outputs([job], spec, out, write_csv, shapes)
    finally:
        lock.discard()  # what stays (outputs, or a stopped job's batches) needs no lock file beside it


def _write_job_outputs(jobs, spec: dict, out: Path, write_csv: bool, shapes: dict) -> None:
    """The finished batches of the job (or, for merge, of the shards' jobs) as one run's outputs; then
    the job folders go."""
    from .jobs import job_images
    from .outputs import write_samples

    images = job_images(jobs, spec, shapes)
    labels, columns, names = (spec["outputs"][key] for key in ("labels", "columns", "class_names"))
    write_samples(out, images, write_csv, labels=labels, columns=columns, class_names=names and tuple(names))
    for j in jobs:
        j.remove()
    click.echo(f"wrote {len(images)} images to {out}")
    click.echo(f"grid: {out / 'grid.png'}")


class _SamplingProgress:
    """A bar on a terminal; elsewhere (a log file, a scheduler) one line per finished batch."""

    def __init__(self, batch_sizes: list[int], steps: int):
        import time

        self.total_images, self.done_images, self.start = sum(batch_sizes), 0, time.monotonic()
        self.sizes = iter(batch_sizes)
        self.bar = None
        if sys.stderr.isatty():
            self.bar = click.progressbar(length=len(batch_sizes) * steps, label="sampling", file=sys.stderr)
            self.bar.__enter__()

    def step(self, batch_index: int, step_index: int) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def batch_done(self, batch_index: int, num_batches: int) -> None:
        import time

        self.done_images += next(self.sizes)
        if self.bar is not None:
            return
        elapsed = time.monotonic() - self.start
        left = elapsed / self.done_images * (self.total_images - self.done_images)
        click.echo(
            f"batch {batch_index + 1}/{num_batches}: {self.done_images}/{self.total_images} images, "
            f"{_clock(elapsed)} elapsed, about {_clock(left)} left",
            err=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@cli.command("merge")
@click.argument("shards", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder of the whole job.")
@click.option("--csv", "write_csv", is_flag=True, help="Also write samples.csv in the seed's format (pixel0..).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier run's outputs in --out (nothing else).")
def merge_command(shards, out, write_csv, overwrite) -> None:
    """Join the output folders of `ddpm-run sample --shard K/N` (all N, any order) into the outputs one
    uninterrupted run writes, byte for byte; the shards' job folders are removed after."""
    from .jobs import batch_shapes, merge_shards
    from .outputs import check_output_folder

    spec, jobs = merge_shards(list(shards))
    check_output_folder(out, overwrite)
    _write_job_outputs(jobs, spec, out, write_csv, batch_shapes(spec))


@cli.command("web")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder of the static site to write.")
@click.option(
    "--onnxruntime-web",
    "ort_package",
    type=click.Path(path_type=Path),
    default=None,
    help="The onnxruntime-web npm package folder to copy from [default: node_modules/onnxruntime-web here or above].",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out folder.")
def web_command(model, out, ort_package, overwrite) -> None:
    """Write a static site that samples from MODEL in the browser with onnxruntime-web (no server code:
    `ddpm-run serve OUT` for WebAssembly threads, or any static host, such as `python -m http.server -d OUT`)."""
    from .onnx_model import load_onnx_model
    from .web_site import SERVE_HINT, build_site, find_onnxruntime_web, webgpu_note

    metadata = load_onnx_model(model, "cpu").metadata  # the checks of ddpm-run sample: a bad file is one line
    package = find_onnxruntime_web(ort_package, Path.cwd())
    manifest = build_site(model, out, package, overwrite)
    click.echo(f"wrote {out}/ ({len(manifest['files'])} files, onnxruntime-web {manifest['onnxruntime_web']})")
    note = webgpu_note(metadata.exporter.get("opset"))
    if note:
        click.echo(f"note: {model}: {note}")
    click.echo("serve it: " + SERVE_HINT.format(out=out))


@cli.command("serve")
@click.argument("site", type=click.Path(path_type=Path))
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: any free port.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Browsers allow threads only on localhost or over HTTPS.",
)
def serve_command(site, port, host) -> None:
    """Serve SITE (a folder `ddpm-run web` wrote) with the headers that let the page use WebAssembly
    threads (Cross-Origin-Opener-Policy and -Embedder-Policy), until Ctrl-C."""
    from .web_server import make_server, site_url

    server = make_server(site, host, port)
    click.echo(f"serving {site}/ at {site_url(server)} (cross-origin isolated: WebAssembly threads); Ctrl-C stops")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.server_close()


@cli.command("info")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the metadata document as JSON.")
def info_command(model, as_json) -> None:
    """Print MODEL's metadata: image, schedule, training provenance, exporter (and a generator's sampler)."""
    from .generator_model import load_model

    meta = load_model(model, device="cpu", threads=1).metadata
    if as_json:
        click.echo(json.dumps(json.loads(meta.to_json()), indent=2, sort_keys=True))
        return
    image, schedule = meta.image, meta.schedule
    lines = [
        f"model:      {model}",
        f"image:      {image.channels}x{image.height}x{image.width}, "
        f"values in [{image.value_range[0]:g}, {image.value_range[1]:g}]",
        f"schedule:   {schedule.kind}, T={schedule.num_timesteps}"
        + (f", beta {schedule.beta_start:g} -> {schedule.beta_end:g}" if schedule.kind == "linear" else ""),
        f"predicts:   {meta.prediction_type}" + _network_prediction(meta.training),
        f"training:   {meta.training.get('steps')} steps, {'EMA' if meta.training.get('ema') else 'raw'} weights, "
        f"checkpoint sha256 {str(meta.training.get('checkpoint_sha256'))[:16]}...",
        "exporter:   " + ", ".join(f"{k} {v}" for k, v in sorted(meta.exporter.items())),
        f"format:     ddpm metadata v{meta.format_version}",
    ]
    for entry in meta.fitted:
        fit = entry.fit
        lines.append(
            f"fitted:     {entry.sampler}, {entry.steps} calls"
            + "".join(f", {k} {v}" for k, v in sorted(entry.options.items()))
            + " at t = "
            + ", ".join(f"{t:.1f}" for t in entry.timesteps)
            + (
                f" (error {fit['error']:.2e} against {fit.get('reference')}; {fit.get('start_spacing')} "
                f"spacing {fit['start_error']:.2e})"
                if "error" in fit and "start_error" in fit
                else ""
            )
        )
    if meta.default_sampling:
        default = meta.default_sampling
        lines.append(
            f"samples:    with {default['sampler']}, {default['steps']} calls by default"
            + "".join(f", {k} {v}" for k, v in sorted(default.get("options", {}).items()))
            + (f" (distilled from a teacher of {default['teacher_steps']} steps)" if "teacher_steps" in default else "")
        )
    if meta.quantized is not None:
        lines.append(f"quantized:  {_describe_quantized(meta.quantized)}")
    if meta.generator is not None:
        entry = meta.generator
        lines.append(
            f"generator:  noise to images with {entry.sampler}, {entry.steps} calls"
            + "".join(f", {k} {v}" for k, v in sorted(entry.options.items()))
            + " at t = "
            + ", ".join(f"{t:.1f}" for t in entry.timesteps)
            + f"; inputs x_T{', step_noise (' + str(entry.noise_draws) + ' draws)' if entry.noise_draws else ''}"
            + (f", y, guidance_scale (default {entry.guidance_scale:g})" if entry.guidance_scale is not None else "")
        )
    if meta.classes is None:
        lines.insert(5, "classes:    none (unconditional)")
    else:
        names = ", ".join(f"{i}:{name}" for i, name in enumerate(meta.classes.names))
        lines.insert(
            5,
            f"classes:    {meta.classes.num_classes} ({names}); 'no class' = {meta.classes.null_index}, "
            f"label dropout {meta.training.get('label_dropout')}",
        )
    click.echo("\n".join(lines))


def _describe_quantized(entry: dict) -> str:
    """The ``quantized`` entry in one line (each part only where the file says it)."""
    parts = [entry["mode"] + (f", {entry['format']}" if "format" in entry else "")]
    if entry.get("kept_float"):
        parts.append("kept in float32: " + ", ".join(entry["kept_float"]))
    calibration = entry.get("calibration", {})
    if calibration:
        parts.append(
            f"calibrated ({calibration.get('method', '?')}) on {calibration.get('model_calls', '?')} model calls "
            f"from {calibration.get('images', '?')} starting noises along the {calibration.get('inputs', '?')}"
        )
    if "gate" in entry:
        gate = entry["gate"]
        limits = [f"mean pixel difference <= {gate['max_image_diff']:g}"] if "max_image_diff" in gate else []
        limits += [f"class change <= {gate['max_class_change']:.0%}"] if "max_class_change" in gate else []
        parts.append("gate: " + (", ".join(limits) or "no limit"))
    return "; ".join(parts)


def _quantized_note(metadata) -> str:
    """Said on sample's first line, so an 8-bit file is never taken for the float32 one."""
    return "" if metadata.quantized is None else f", {metadata.quantized['mode']} model (quantized)"


def _network_prediction(training: dict) -> str:
    """How the graph got its eps, for a network trained to predict something else (ddpm train --prediction)."""
    trained = training.get("network_prediction")
    if not isinstance(trained, dict) or "kind" not in trained:
        return ""
    extra = f", sigma_data {trained['sigma_data']:g}" if "sigma_data" in trained else ""
    return f" (the network predicts {trained['kind']}{extra}; the graph converts it)"


def main(argv: list[str] | None = None) -> None:
    run_cli(cli, argv, "ddpm-run")


if __name__ == "__main__":
    main()
