"""Publish this folder as a Hugging Face Space (Gradio SDK).

    python space/publish.py NAMESPACE/NAME                        # the untrained defaults
    python space/publish.py NAMESPACE/NAME --model NAMESPACE/RUN  # a published run's viewmaker (repeat per domain)
    python space/publish.py NAMESPACE/NAME --dry_run outputs/space   # write the Space's files, send nothing

One commit uploads `app.py`, `viewmaker_space.py`, `README.md` (the Space's card: its metadata lists the models) and
`requirements.txt`. A Space installs its requirements before its files are copied in, so the package cannot come
from a path: by default a wheel of this checkout is built and uploaded to `wheels/`, and `requirements.txt` installs
it by its URL (which needs the Space to be public); `--package` gives another requirement instead (e.g.
`hf-viewmaker @ git+https://github.com/OWNER/hf-viewmaker@COMMIT`, for a private Space). PyTorch comes from the CPU
index (`--torch_index`; an empty value leaves pip's default, a CUDA build, for GPU hardware). `--model` ids are set
as the Space variable `VIEWMAKER_MODEL`. The token comes from `HF_TOKEN` or `hf auth login`; `HF_ENDPOINT` selects
another Hub-compatible server.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

SPACE_DIR = Path(__file__).resolve().parent
REPO_ROOT = SPACE_DIR.parent
SPACE_FILES = ("app.py", "viewmaker_space.py")
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
PACKAGE_NAME = "hf-viewmaker"
WHEELS_FOLDER = "wheels"


def _requirement_name(line: str) -> str | None:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return None if match is None or line.lstrip().startswith(("#", "-")) else match.group(1).lower().replace("_", "-")


def render_requirements(template: str, package: str, torch_index: str | None) -> str:
    """`space/requirements.txt` for the Space: the `hf-viewmaker` line replaced with `package`, and PyTorch's
    `torch_index` as an extra index (so that pip takes its `+cpu` build)."""
    lines = template.splitlines()
    names = [_requirement_name(line) for line in lines]
    if PACKAGE_NAME not in names:
        raise ValueError(f"space/requirements.txt has no {PACKAGE_NAME} line to replace")
    lines[names.index(PACKAGE_NAME)] = package
    if torch_index:
        lines.insert(0, f"--extra-index-url {torch_index}")
    return "\n".join(lines) + "\n"


def render_readme(template: str, models: list[str]) -> str:
    """The Space card: `space/README.md` with `models:` in its metadata listing the Hub models it loads."""
    match = re.match(r"---\n(.*?)\n---\n", template, flags=re.DOTALL)
    if match is None:
        raise ValueError("space/README.md does not start with a --- metadata block")
    metadata = yaml.safe_load(match.group(1))
    if models:
        metadata["models"] = list(models)
    else:
        metadata.pop("models", None)
    front = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n{template[match.end() :]}"


def build_wheel(output_dir: Path) -> Path:
    """A wheel of this checkout (pip, without fetching a build backend if the installed setuptools will do)."""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(output_dir)]
    try:
        subprocess.run([*command, "--no-build-isolation", str(REPO_ROOT)], check=True)
    except subprocess.CalledProcessError:
        subprocess.run([*command, str(REPO_ROOT)], check=True)
    wheels = sorted(output_dir.glob("hf_viewmaker-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip wheel wrote no hf_viewmaker wheel to {output_dir}")
    return wheels[-1]


def stage(folder: Path, space_id: str, models: list[str], package: str | None, torch_index: str | None) -> Path:
    """Write the Space's files to `folder` (building and adding the wheel unless `package` is given)."""
    from huggingface_hub import hf_hub_url

    folder.mkdir(parents=True, exist_ok=True)
    for name in SPACE_FILES:
        shutil.copy2(SPACE_DIR / name, folder / name)
    if package is None:
        wheel = build_wheel(folder / WHEELS_FOLDER)
        url = hf_hub_url(space_id, f"{WHEELS_FOLDER}/{wheel.name}", repo_type="space")
        package = f"{PACKAGE_NAME} @ {url}"
    requirements = render_requirements((SPACE_DIR / "requirements.txt").read_text(), package, torch_index)
    (folder / "requirements.txt").write_text(requirements)
    (folder / "README.md").write_text(render_readme((SPACE_DIR / "README.md").read_text(), models))
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Publish the viewmaker Space to the Hugging Face Hub.")
    parser.add_argument("space_id", help="NAMESPACE/NAME of the Space")
    parser.add_argument("--model", action="append", default=[], help="a Hub repo id the Space loads (repeatable)")
    parser.add_argument("--private", action="store_true", help="create the Space private (then give --package)")
    parser.add_argument("--package", help="the requirement that installs hf-viewmaker (default: an uploaded wheel)")
    parser.add_argument("--torch_index", default=CPU_TORCH_INDEX, help="extra index for PyTorch ('' for none)")
    parser.add_argument("--hardware", help="Space hardware, e.g. cpu-basic (default: the Hub's)")
    parser.add_argument("--dry_run", metavar="DIR", help="write the Space's files to DIR and send nothing")
    args = parser.parse_args(argv)

    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(args.space_id)
        for model in args.model:
            validate_repo_id(model.partition("@")[0])
    except HFValidationError as error:
        parser.error(str(error))
    if "/" not in args.space_id:
        parser.error(f"space_id must be NAMESPACE/NAME, got {args.space_id!r}")
    local = [model for model in args.model if Path(model).expanduser().exists()]
    if local:
        parser.error(f"--model takes Hub repo ids (the Space cannot read local folders): {', '.join(local)}")
    if args.private and args.package is None:
        parser.error("a private Space cannot install a wheel from its own URL: give --package")
    models = [model.partition("@")[0] for model in args.model]

    if args.dry_run:
        folder = stage(Path(args.dry_run), args.space_id, models, args.package, args.torch_index)
        print(f"wrote the Space's files to {folder}")
        if args.model:
            print(f"a push would set the Space variable VIEWMAKER_MODEL={','.join(args.model)}")
        return

    from huggingface_hub import HfApi

    api = HfApi()
    with tempfile.TemporaryDirectory() as scratch:
        folder = stage(Path(scratch), args.space_id, models, args.package, args.torch_index)
        api.create_repo(
            args.space_id,
            repo_type="space",
            space_sdk="gradio",
            private=args.private,
            exist_ok=True,
            space_hardware=args.hardware,
        )
        if args.model:
            api.add_space_variable(args.space_id, "VIEWMAKER_MODEL", ",".join(args.model))
        api.upload_folder(
            repo_id=args.space_id,
            repo_type="space",
            folder_path=folder,
            commit_message="Publish the viewmaker Space (hf-viewmaker)",
        )
    print(f"published: {api.endpoint}/spaces/{args.space_id}")


if __name__ == "__main__":
    main()
