"""Adversarial pretraining, the library side of `training/pretrain.py` and `training/benchmark.py`: the model and
its joint optimizer built from the run's arguments, one training step of both players, the budget schedule,
crash-safe checkpoints and the run's `Accelerator`."""

from .checkpoints import (
    checkpoint_problems,
    list_checkpoints,
    load_process_state,
    load_training_state,
    missing_rng_states,
    prepare_output_dir,
    resolve_checkpoint,
    save_checkpoint,
)
from .model import build_adversarial_optimizer, build_pretraining_config, build_pretraining_model
from .optimizer import AdversarialOptimizer, distortion_budget_at, learning_rate_at
from .runtime import (
    configure_logging,
    describe_hardware,
    framework_versions,
    log_image,
    make_accelerator,
    replica_checksums,
    retain_freed_host_memory,
    start_trackers,
)
from .step import AdversarialStep, in_channels_last, noise_seed, report_skipped_steps

__all__ = [
    "AdversarialOptimizer",
    "AdversarialStep",
    "build_adversarial_optimizer",
    "build_pretraining_config",
    "build_pretraining_model",
    "checkpoint_problems",
    "configure_logging",
    "describe_hardware",
    "distortion_budget_at",
    "framework_versions",
    "in_channels_last",
    "learning_rate_at",
    "list_checkpoints",
    "load_process_state",
    "load_training_state",
    "log_image",
    "make_accelerator",
    "missing_rng_states",
    "noise_seed",
    "prepare_output_dir",
    "replica_checksums",
    "report_skipped_steps",
    "resolve_checkpoint",
    "retain_freed_host_memory",
    "save_checkpoint",
    "start_trackers",
]
