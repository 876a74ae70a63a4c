"""Crash-safe training checkpoints: a checkpoint folder exists under its final name only once it is complete, a
damaged one is named and passed over, and a run never starts over another run's folder by accident."""

import json
import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.utils import RNG_STATE_NAME, SAFE_WEIGHTS_NAME
from safetensors import SafetensorError, safe_open

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)$")
# Written last, inside the partial folder, just before the rename that publishes it.
TRAINING_STATE_FILE = "training_state.json"
PARTIAL_PREFIX = ".partial-"
# One per process, where the run has per-process state to resume (a data stream's position).
PROCESS_STATE_FILE = "process_state_{}.json"


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


def checkpoint_problems(checkpoint: str | Path) -> list[str]:
    """What keeps `checkpoint` from resuming, each naming its file: `[]` for a complete, readable checkpoint. The
    weights' header is read (a truncated file fails there), not the tensors."""
    checkpoint, problems = Path(checkpoint), []
    state = checkpoint / TRAINING_STATE_FILE
    try:
        json.loads(state.read_text())
    except FileNotFoundError:
        problems.append(f"{state} is missing")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        problems.append(f"{state} is not valid JSON ({error})")
    weights = checkpoint / SAFE_WEIGHTS_NAME
    try:
        with safe_open(str(weights), framework="pt") as opened:
            opened.keys()
    except FileNotFoundError:
        problems.append(f"{weights} is missing")
    except (SafetensorError, OSError) as error:
        problems.append(f"{weights} cannot be read ({error})")
    return problems


def missing_rng_states(checkpoint: str | Path, num_processes: int) -> list[Path]:
    """The per-process RNG state files `accelerator.save_state` wrote that `checkpoint` lacks."""
    paths = [Path(checkpoint) / f"{RNG_STATE_NAME}_{index}.pkl" for index in range(num_processes)]
    return [path for path in paths if not path.is_file()]


def resolve_checkpoint(
    output_dir: str | Path,
    resume_from_checkpoint: str,
    num_processes: int = 1,
    allow_missing_rng_states: bool = False,
) -> Path | None:
    """The checkpoint to resume from. `"latest"` gives the newest intact checkpoint of `output_dir`, passing over
    damaged newer ones with a warning that names what is wrong (`None` when there is none yet, so that a restarted
    job simply starts); anything else is a path that must be an intact checkpoint.

    A checkpoint without the RNG states of every process cannot resume exactly (the data order and the noise would
    differ from an uninterrupted run): an error unless `allow_missing_rng_states`."""
    if resume_from_checkpoint == "latest":
        candidates = list_checkpoints(output_dir)
        if not candidates:
            return None
    else:
        candidates = [Path(resume_from_checkpoint)]
        if not (candidates[0] / TRAINING_STATE_FILE).is_file():
            raise FileNotFoundError(f"{candidates[0]} is not a complete checkpoint (no {TRAINING_STATE_FILE} in it)")
    damaged = []
    for checkpoint in reversed(candidates):
        problems = checkpoint_problems(checkpoint)
        if not problems:
            break
        damaged.append(f"{checkpoint.name}: {'; '.join(problems)}")
    else:
        raise ValueError(f"no intact checkpoint to resume from ({' | '.join(damaged)})")
    if damaged:
        logger.warning(f"resuming from {checkpoint}, passing over damaged newer checkpoints: {' | '.join(damaged)}")
    missing = missing_rng_states(checkpoint, num_processes)
    if missing and not allow_missing_rng_states:
        raise ValueError(
            f"{checkpoint} lacks {', '.join(str(path) for path in missing)}: resuming would not reproduce the "
            "uninterrupted run; pass --resume_without_rng_states true to resume anyway"
        )
    if missing:
        logger.warning(f"resuming {checkpoint} without {', '.join(map(str, missing))}: the run is no longer exact")
    return checkpoint


def prepare_output_dir(
    output_dir: str | Path,
    resuming: bool,
    overwrite: bool,
    run_files: tuple[str, ...] = (),
    checkpoints: bool = True,
    delete: bool = True,
) -> None:
    """Check, before any work, that a run may write to `output_dir`: it can be created and written to, and it holds
    no other run (its checkpoints when `checkpoints`, or any of `run_files`), unless the run resumes from a checkpoint
    found there (`resuming`) or replaces the other run (`overwrite`). Replacing deletes that run's checkpoints and
    `run_files` (with `delete`: on one process of several), so that neither their rotation nor a crash mixes the two
    runs; any other file in the folder is left alone.

    Every process may call it: the checks raise alike on each, so none is left waiting for another."""
    output_dir = Path(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=output_dir, prefix=".write-check-"):
            pass
    except OSError as error:
        raise PermissionError(f"--output_dir {output_dir} cannot be written to ({error}): nothing was run") from None
    if resuming:
        return
    held = (list_checkpoints(output_dir) if checkpoints else []) + [
        output_dir / name for name in run_files if (output_dir / name).exists()
    ]
    if held and not overwrite:
        raise FileExistsError(
            f"--output_dir {output_dir} holds another run ({', '.join(path.name for path in held)}): resume it with "
            "--resume_from_checkpoint latest, choose another --output_dir, or pass --overwrite_output_dir true to "
            "replace it"
        )
    if delete:
        partial = list(checkpoints_dir(output_dir).glob(f"{PARTIAL_PREFIX}*")) if checkpoints else []
        for path in held + partial:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def save_checkpoint(
    accelerator: Accelerator,
    output_dir: str | Path,
    step: int,
    training_state: dict[str, Any],
    total_limit: int | None,
    process_state: dict[str, Any] | None = None,
) -> Path:
    """Save everything `accelerator.save_state` saves (models, optimizers, scaler, RNG states, registered objects)
    plus `training_state` (JSON), as `output_dir/checkpoints/step_<step>`, and each process's own `process_state`
    (JSON, e.g. where its part of a data stream stands: `load_process_state`). Every process must call it.

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
    if process_state is not None:
        (partial / PROCESS_STATE_FILE.format(accelerator.process_index)).write_text(json.dumps(process_state))
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


def load_process_state(checkpoint: str | Path, process_index: int) -> dict[str, Any]:
    """The `process_state` that process `process_index` saved in `checkpoint`; an error naming the file when it is
    missing or damaged (a checkpoint of a run launched with fewer processes, or an interrupted copy)."""
    path = Path(checkpoint) / PROCESS_STATE_FILE.format(process_index)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} is missing: the checkpoint holds no state of process {process_index}"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None


__all__ = [
    "checkpoint_problems",
    "list_checkpoints",
    "load_process_state",
    "load_training_state",
    "missing_rng_states",
    "prepare_output_dir",
    "resolve_checkpoint",
    "save_checkpoint",
]
