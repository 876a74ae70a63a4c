"""Crash-safe training checkpoints: a checkpoint folder exists under its final name only once it is complete."""

import json
import re
import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator

CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)$")
# Written last, inside the partial folder, just before the rename that publishes it.
TRAINING_STATE_FILE = "training_state.json"
PARTIAL_PREFIX = ".partial-"


def checkpoints_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    folder = checkpoints_dir(output_dir)
    if not folder.is_dir():
        return []
    found = [
        (int(match.group(1)), path)
        for path in folder.iterdir()
        if (match := CHECKPOINT_PATTERN.match(path.name)) and (path / TRAINING_STATE_FILE).is_file()
    ]
    return [path for _, path in sorted(found)]


def resolve_checkpoint(output_dir: str | Path, resume_from_checkpoint: str) -> Path | None:
    """`"latest"` gives the newest complete checkpoint of `output_dir` (or `None` when there is none yet, so that a
    restarted job simply starts); anything else is a path that must be a complete checkpoint."""
    if resume_from_checkpoint == "latest":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    path = Path(resume_from_checkpoint)
    if not (path / TRAINING_STATE_FILE).is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no {TRAINING_STATE_FILE} in it)")
    return path


def save_checkpoint(
    accelerator: Accelerator, output_dir: str | Path, step: int, training_state: dict[str, Any], total_limit: int | None
) -> Path:
    """Save everything `accelerator.save_state` saves (models, optimizers, scaler, RNG states, registered objects)
    plus `training_state` (JSON), as `output_dir/checkpoints/step_<step>`. Every process must call it.

    The state goes to a hidden partial folder first; the main process then writes the training state and renames the
    folder, so a run killed during a save leaves only a partial folder, which is never resumed from and is removed by
    the next save. Then only the newest `total_limit` checkpoints are kept.
    """
    folder = checkpoints_dir(output_dir)
    final = folder / f"step_{step}"
    partial = folder / f"{PARTIAL_PREFIX}step_{step}"
    if accelerator.is_main_process:
        for stale in folder.glob(f"{PARTIAL_PREFIX}*"):
            shutil.rmtree(stale)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (partial / TRAINING_STATE_FILE).write_text(json.dumps(training_state, indent=2))
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
        if total_limit is not None:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def load_training_state(checkpoint: str | Path) -> dict[str, Any]:
    return json.loads((Path(checkpoint) / TRAINING_STATE_FILE).read_text())


__all__ = ["list_checkpoints", "load_training_state", "resolve_checkpoint", "save_checkpoint"]
