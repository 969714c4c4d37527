"""`spine devices` and `spine doctor`: which audio devices there are, and whether Spine can run on them."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from device.errors import UserError

if TYPE_CHECKING:  # the modules that load PortAudio are imported when a command runs, not with `spine`
    from device.audio.devices import DeviceInfo
    from device.audio.doctor import Finding
    from device.config import Config
    from device.engines.model_files import ModelPaths
    from device.engines.providers import OnnxModel

_DEVICE_HELP = "an index or a part of a name from `spine devices` (default: the system default)"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `devices` and `doctor` to the top-level `spine` parser."""
    devices = subparsers.add_parser(
        "devices",
        help="list the audio devices and the rates each takes",
        description=(
            "List the audio devices PortAudio sees: index, name, host API, channels, default rate, and which "
            "of 16, 22.05, 44.1 and 48 kHz each takes for recording and for playing (mono 16-bit). Each device "
            "is opened briefly to find out, so a device another program holds shows no rates."
        ),
    )
    devices.set_defaults(func=run_devices)
    doctor = subparsers.add_parser(
        "doctor",
        help="check that Spine can record and play on the audio devices, and say how to fix what is wrong",
        description=(
            "Load the configuration as `spine run` does (a bad file is refused the same way, exit 2), check the "
            "model files it needs against the manifest's sha256, load the ONNX Runtime models (voice detector, "
            "wake word, voice) on the execution providers their `providers` settings choose and say which "
            "providers onnxruntime offers and which each model's session runs on, find the input and output "
            "devices, check they "
            "take 16 kHz, and run them together in one full-duplex stream with 10 ms periods for half a second, "
            "as Spine does. Prints a line per check with a fix for each failure; exits with status 1 if any "
            "check fails."
        ),
    )
    doctor.add_argument(
        "--config", type=Path, help="check this configuration TOML, and take the models, devices and period from it"
    )
    doctor.add_argument("--input", metavar="DEV", help=f"the microphone: {_DEVICE_HELP}")
    doctor.add_argument("--output", metavar="DEV", help=f"the speaker: {_DEVICE_HELP}")
    doctor.set_defaults(func=run_doctor)


def _portaudio_missing(error: ImportError) -> UserError:
    return UserError(
        f"cannot load PyAudio/PortAudio ({error}): install them with scripts/setup.sh "
        "(apt: portaudio19-dev; pip: pyaudio)"
    )


def run_devices(args: argparse.Namespace) -> int:
    try:
        from device.audio.devices import NO_DEVICE_FIX, list_devices
    except ImportError as error:
        raise _portaudio_missing(error) from error

    devices = list_devices()
    if not devices:
        print(f"no audio device found: {NO_DEVICE_FIX}")
        return 1
    for line in device_table(devices):
        print(line)
    return 0


def run_doctor(args: argparse.Namespace) -> int:
    from device.config import load_config
    from device.rates import SPINE_RATE_HZ as RATE_HZ

    # The loader `spine run` and `spine config --check` use: a file they refuse is refused here, with the same line.
    config = load_config(args.config)
    try:
        from device.audio.doctor import Finding, check
    except ImportError as error:
        raise _portaudio_missing(error) from error

    models_finding, paths = _models_finding(config, Finding)
    findings = [models_finding, *_provider_findings(config, paths, Finding)]
    findings += check(
        args.input if args.input is not None else config.audio.input_device,
        args.output if args.output is not None else config.audio.output_device,
        rate_hz=RATE_HZ,
        period_samples=config.period_samples,
    )
    for finding in findings:
        print(f"{'✓' if finding.ok else '✗'} {finding.what}")
        if finding.fix:
            print(f"    fix: {finding.fix}")
    return 0 if all(f.ok for f in findings) else 1


def _models_finding(config: Config, finding: type[Finding]) -> tuple[Finding, ModelPaths | None]:
    """The model files `spine run` would load, checked as it checks them (a failure names the file and the fix),
    and their paths when they are all fine."""
    from device.engines.model_files import models_dir, verified_model_paths

    try:
        paths = verified_model_paths(config)
    except UserError as error:
        what, _, fix = error.message.partition("; ")
        return finding(False, what, fix or None), None
    return finding(True, f"model files in {models_dir(config)} match the manifest"), paths


def _provider_findings(config: Config, paths: ModelPaths | None, finding: type[Finding]) -> list[Finding]:
    """What this onnxruntime offers, then per section the providers asked for and what its sessions run on
    (loaded as `spine run` loads them). A provider asked for that is not used fails the check."""
    try:
        import onnxruntime

        from device.engines.load import load_onnx_models
        from device.engines.providers import GPU_PROVIDERS, available_providers
    except ImportError as error:
        return [finding(False, f"cannot load ONNX Runtime ({error})", "reinstall Spine: scripts/setup.sh")]
    available = available_providers()
    offered = f"onnxruntime {onnxruntime.__version__} offers {', '.join(available)}"
    if not set(available) & set(GPU_PROVIDERS):
        offered += " (no GPU provider: every model runs on the CPU)"
    findings = [finding(True, offered)]
    if paths is None:
        why = "not checked which execution provider each model runs on: the model files must be fixed first"
        return [*findings, finding(False, why)]
    try:
        models = load_onnx_models(config, paths)
    except UserError as error:
        what, _, fix = error.message.partition("; ")
        return [*findings, finding(False, what, fix or None)]
    return findings + [_provider_finding(model, finding) for model in models]


def _provider_finding(model: OnnxModel, finding: type[Finding]) -> Finding:
    from device.engines.providers import INSTALL_HINT
    from device.tomlfile import toml_value

    section, choice = model.section, model.choice
    runs = {names for names in model.sessions.values()}
    if len(runs) == 1:
        labels = list(model.sessions)
        subject = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + f" and {labels[-1]}"
        verb = "runs" if len(labels) == 1 else "run"
        on = f"{subject} {verb} on {', '.join(runs.pop())}"
    else:
        on = "; ".join(f"{label} runs on {', '.join(names)}" for label, names in model.sessions.items())
    what = f"[{section}] providers = {toml_value(choice.wanted)}: {on}"
    if choice.missing:
        fix = (
            f"this onnxruntime does not offer {', '.join(choice.missing)}. {INSTALL_HINT}, or set "
            f"`[{section}] providers` to what it offers"
        )
        return finding(False, what, fix)
    unused = model.unused_warning()
    return finding(unused is None, what, unused)


def device_table(devices: Sequence[DeviceInfo]) -> list[str]:
    """The devices as an aligned text table, with a legend line."""
    header = ("#", "name", "host API", "in", "out", "default", "rate Hz", "records at kHz", "plays at kHz")
    rows = [header]
    for d in devices:
        default = "/".join(w for w, on in (("in", d.is_default_input), ("out", d.is_default_output)) if on)
        rows.append(
            (
                str(d.index),
                d.name,
                d.host_api,
                str(d.max_input_channels),
                str(d.max_output_channels),
                default or "-",
                str(d.default_rate_hz),
                _khz(d.input_rates_hz) if d.max_input_channels else "-",
                _khz(d.output_rates_hz) if d.max_output_channels else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {0, 3, 4, 6}  # numbers
    lines = [
        "  ".join(
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines = [line.rstrip() for line in lines]
    lines.append("in/out: channels; default: the system's default input/output; kHz: mono 16-bit rates it takes")
    return lines


def _khz(rates_hz: tuple[int, ...]) -> str:
    return " ".join(f"{r / 1000:g}" for r in rates_hz) if rates_hz else "none (busy?)"
