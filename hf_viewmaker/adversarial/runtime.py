"""The `Accelerator` of a training run, and what the run records about its processes."""

import ctypes
import itertools
import logging
import os
import platform
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs
from PIL import Image


def make_accelerator(
    cpu: bool = False,
    mixed_precision: str | None = None,
    log_with: str | None = None,
    project_dir: str | None = None,
    gradient_accumulation_steps: int = 1,
    find_unused_parameters: bool = False,
    dynamo_backend: str | None = None,
    data_seed: int | None = None,
) -> Accelerator:
    """An `Accelerator` whose data loaders shuffle with epoch-seeded samplers (a resumed run sees the order an
    uninterrupted one would), which refuses to run when it sees fewer processes than were launched.

    Args:
        cpu: run on the CPU even if an accelerator is present.
        find_unused_parameters: for DDP; each of the original update's two passes leaves one player without
            gradients.
        data_seed: the samplers' seed (default: Accelerate's, from the global seed).
        The rest: as `Accelerator`'s.
    """
    launched_processes = int(os.environ.get("WORLD_SIZE", "1"))
    asked = _processes_asked_of_the_launcher()
    if launched_processes == 1 and asked > 1:
        raise RuntimeError(
            f"`accelerate launch --num_processes {asked}` started one process (Accelerate starts several here only "
            "with --multi_gpu): relaunch with --multi_gpu, or with --num_processes 1"
        )
    accelerator = Accelerator(
        # Several processes on a machine without accelerators (`accelerate launch --multi_gpu` or torchrun) must be
        # told to run on the CPU, or Accelerate treats each of them as an independent single-process job.
        cpu=cpu or (launched_processes > 1 and not torch.accelerator.is_available()),
        gradient_accumulation_steps=gradient_accumulation_steps,
        mixed_precision=mixed_precision,
        log_with=log_with,
        project_dir=project_dir,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=data_seed),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
        dynamo_backend=dynamo_backend,
    )
    if accelerator.num_processes != launched_processes:
        raise RuntimeError(
            f"{launched_processes} processes were launched but Accelerate sees {accelerator.num_processes}: they would "
            "train independently and overwrite each other's outputs"
        )
    return accelerator


# mallopt(3) parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def retain_freed_host_memory() -> bool:
    """Make glibc's malloc keep the memory this process frees, for its next allocations, instead of handing it back
    to the operating system.

    By default glibc serves every allocation above its mmap threshold (32 MiB at most) with a fresh `mmap` and unmaps
    it when freed, so a training step on the CPU, whose activations and gradients of a large batch or input are such
    blocks, page-faults all of them in again every step, a cost that made examples/s fall with the batch and the input
    size (benchmarks/RESULTS.md). With `mmap` and trimming off, freed blocks stay in the heap and the next step reuses
    them; the resident memory stays at the step's peak, which every step reaches anyway. Nothing computed changes.

    Process-wide and permanent, so the training scripts call it on the CPU, not the library. Returns whether it
    applied (glibc only)."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, -1))  # -1: never trim


def _processes_asked_of_the_launcher() -> int:
    """The `--num_processes` given to the `accelerate launch` that started this process (its parent), or 1 where
    that cannot be seen: Accelerate passes nothing of it to a single process it starts instead."""
    try:
        command = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return 1
    launchers = ("accelerate", "accelerate-launch", "accelerate.commands.launch")
    if not any(Path(part).name in launchers for part in command):
        return 1
    # `--num_processes N` or `--num_processes=N`, as one sequence of words.
    words = [word for part in command for word in part.split("=", 1)]
    for flag, value in itertools.pairwise(words):
        if flag in ("--num_processes", "--num-processes") and value.isdigit():
            return int(value)
    return 1


def describe_hardware(accelerator: Accelerator) -> str:
    """What the run trained on, for the model card."""
    device = accelerator.device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{device.type} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return f"{accelerator.num_processes} x {name}"


class _ProgressAwareHandler(logging.StreamHandler):
    """Writes log lines through `tqdm.write`, above any progress bar instead of glued to its line."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.auto import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # as logging.StreamHandler: a failing log line must not stop the run
            self.handleError(record)


def configure_logging(level: int = logging.INFO) -> None:
    """The scripts' log format on stderr, printed above the progress bars."""
    handler = _ProgressAwareHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(name)s - %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])


def start_trackers(accelerator: Accelerator, project: str, run_name: str, config: dict) -> None:
    """Start the run's trackers with `config` (the run's flags) as its hyperparameters, in their types: TensorBoard's
    hyperparameters take only numbers, strings and booleans, so it gets the others as strings; the rest get lists
    and `None` as they are."""
    accelerator.init_trackers(
        project, init_kwargs={"trackio": {"name": run_name}, "wandb": {"name": run_name}, "tensorboard": {}}
    )
    scalars = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in config.items()}
    for tracker in accelerator.trackers:
        tracker.store_init_configuration(scalars if tracker.name == "tensorboard" else dict(config))


def log_image(accelerator: Accelerator, name: str, image: Image.Image, step: int) -> None:
    """Log a PIL image to every tracker that takes images (TensorBoard as an NHWC array, trackio through its own
    `Image`, since Accelerate's trackio tracker has no image logging)."""
    import numpy as np

    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.log_images({name: np.asarray(image.convert("RGB"))[None]}, step=step, dataformats="NHWC")
        elif tracker.name == "trackio":
            import trackio

            tracker.log({name: trackio.Image(image.convert("RGB"))}, step=step)
        elif tracker.name in ("aim", "clearml"):  # these take one image per name, the others a list
            tracker.log_images({name: image}, step=step)
        elif hasattr(tracker, "log_images"):
            tracker.log_images({name: [image]}, step=step)


#: The libraries whose versions a run records, for its model card.
FRAMEWORKS = ("hf_viewmaker", "transformers", "torch", "accelerate", "datasets", "huggingface_hub")


def framework_versions() -> dict[str, str]:
    """{library: version} of what the run uses, as installed (the model card's "Framework versions")."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in FRAMEWORKS:
        try:
            versions[name] = version(name.replace("_", "-"))
        except PackageNotFoundError:  # a source checkout that is not installed
            versions[name] = "not installed"
    return versions


def replica_checksums(accelerator: Accelerator, model: torch.nn.Module) -> list[float]:
    """One float64 checksum of all parameters per process; DDP replicas must agree bit for bit."""
    params = [p.detach().double().flatten() for p in accelerator.unwrap_model(model).parameters()]
    weights = torch.arange(1, sum(p.numel() for p in params) + 1, dtype=torch.float64, device=params[0].device)
    checksum = (torch.cat(params) * weights.remainder(7).add(1)).sum().reshape(1)
    return accelerator.gather(checksum).tolist()


__all__ = [
    "configure_logging",
    "describe_hardware",
    "framework_versions",
    "log_image",
    "make_accelerator",
    "replica_checksums",
    "start_trackers",
]
