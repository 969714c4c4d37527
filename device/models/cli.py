"""`spine models fetch|list`: install the model files and check what is installed."""

from __future__ import annotations

import argparse
from pathlib import Path

from device.models.fetch import MIRROR_SUMS_NAME, Status, fetch, file_status, human_size
from device.models.manifest import FETCH_HINT, MANIFEST_PATH, ModelFile, default_models_dir, load_manifest

_DEST_HELP = (
    "models directory (default: $SPINE_MODELS_DIR, else $XDG_DATA_HOME/spine/models, "
    "else ~/.local/share/spine/models; here: %(default_dir)s)"
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `models fetch` and `models list` to the top-level `spine` parser."""
    models = subparsers.add_parser(
        "models",
        help="fetch and check the model files (wake word, VAD, ASR, TTS)",
        description=(
            "Install and check the model files Spine needs. They are listed, with upstream URL, sha256, "
            f"size and licence, in {MANIFEST_PATH}; they are never part of the repository."
        ),
    )
    commands = models.add_subparsers(dest="models_command", required=True, metavar="{fetch,list}")
    dest_help = _DEST_HELP % {"default_dir": default_models_dir()}
    _add_fetch(commands, dest_help)
    _add_list(commands, dest_help)


def _add_fetch(commands: argparse._SubParsersAction[argparse.ArgumentParser], dest_help: str) -> None:
    parser = commands.add_parser(
        "fetch",
        help="download (or copy from a mirror) the model files, checking each sha256",
        description=(
            "Download each model file from its upstream URL, or copy it from a local mirror, and install it "
            "only if its sha256 matches the manifest. Files already installed and verified are left alone."
        ),
    )
    parser.add_argument(
        "--mirror",
        type=Path,
        metavar="DIR",
        help=(
            "copy from this local mirror instead of downloading (for machines without internet access): a "
            f"directory with the same layout as the models directory and a {MIRROR_SUMS_NAME} file "
            "(sha256sum output); every file must match both it and the manifest"
        ),
    )
    parser.add_argument("--dest", type=Path, metavar="DIR", help=dest_help)
    parser.add_argument(
        "--all",
        action="store_true",
        help="also fetch the optional files (the alternative wake words: alexa, hey mycroft, hey rhasspy)",
    )
    parser.set_defaults(func=run_fetch)


def _add_list(commands: argparse._SubParsersAction[argparse.ArgumentParser], dest_help: str) -> None:
    parser = commands.add_parser(
        "list",
        help="show each model file and whether it is installed and verified",
        description=(
            "Hash every installed model file and show its status: verified, missing, wrong size or checksum "
            "mismatch. Exits with status 1 if a required file is not verified."
        ),
    )
    parser.add_argument("--dest", type=Path, metavar="DIR", help=dest_help)
    parser.set_defaults(func=run_list)


def run_fetch(args: argparse.Namespace) -> int:
    fetch(_models_dir(args), mirror=args.mirror, include_optional=args.all, progress=True)
    return 0


def run_list(args: argparse.Namespace) -> int:
    models_dir = _models_dir(args)
    manifest = load_manifest()
    statuses = [(model, file_status(models_dir, model)) for model in manifest]
    print(f"models in {models_dir}")
    print(_table(statuses))
    missing_required = [m.path for m, s in statuses if m.required and s is not Status.VERIFIED]
    missing_optional = [m.path for m, s in statuses if not m.required and s is not Status.VERIFIED]
    if missing_optional:
        print(f"{len(missing_optional)} optional file(s) not verified; `spine models fetch --all` fetches them")
    if missing_required:
        print(f"{len(missing_required)} required file(s) not verified; {FETCH_HINT}")
        return 1
    return 0


def _models_dir(args: argparse.Namespace) -> Path:
    # Resolved at run time rather than as an argparse default, so the environment of the run decides.
    dest: Path | None = args.dest
    return dest if dest is not None else default_models_dir()


def _table(statuses: list[tuple[ModelFile, Status]]) -> str:
    header = ("name", "path", "size", "licence", "status")
    rows = [header] + [
        (
            model.name if model.required else f"{model.name} (optional)",
            model.path,
            human_size(model.size_bytes),
            model.licence,
            str(status),
        )
        for model, status in statuses
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )
