#!/usr/bin/env python
"""Adversarial contrastive pretraining of a viewmaker and an encoder (Tamkin et al., ICLR 2021), with Accelerate.

    accelerate launch training/pretrain.py --config training/configs/quickstart.yaml
    accelerate launch training/pretrain.py --config training/configs/cifar10_viewmaker_simclr.yaml --output_dir runs/c10

A recipe (YAML) sets defaults for every flag below; flags on the command line override it. At the end the output
directory holds `viewmaker/` and `encoder/` (each with its processor, loadable with `AutoModel.from_pretrained`),
`views.png` and `training_args.json`; `checkpoints/step_N/` hold resumable training states.
"""

import argparse
import json
import logging
import math
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, DistributedDataParallelKwargs, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers.hf_argparser import string_to_bool

from hf_viewmaker import (
    ContrastiveResNetConfig,
    ViewmakerConfig,
    ViewmakerForContrastivePretraining,
    ViewmakerPretrainingConfig,
    convolution_saving_checkpoint_context,
)
from hf_viewmaker.checkpointing import load_training_state, resolve_checkpoint, save_checkpoint
from hf_viewmaker.data import PACKAGED_DATASETS, build_pipeline, fixed_items
from hf_viewmaker.data.device_images import DeviceImageDataset, DeviceImageLoader
from hf_viewmaker.evaluation import knn_accuracy
from hf_viewmaker.hub import push_run_to_hub, write_model_card
from hf_viewmaker.optimization import AdversarialOptimizer, distortion_budget_at
from hf_viewmaker.processing import DATASET_NORMALIZATION_STATS
from hf_viewmaker.recipes import parse_args_with_recipe

logger = get_logger(__name__)

ENCODER_PRESETS = ("resnet18_cifar", "resnet18_audio", "resnet50_audio")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="YAML recipe whose keys are the flags below (without dashes)")

    data = parser.add_argument_group("data")
    data.add_argument("--domain", default="image", choices=["image", "audio", "sensor"], help="the data pipeline")
    data.add_argument("--packaged_dataset", choices=sorted(PACKAGED_DATASETS), help="data that ships with the package")
    data.add_argument("--dataset_name", help="Hub dataset id (e.g. uoft-cs/cifar10) or packaged builder (imagefolder)")
    data.add_argument("--dataset_config_name")
    data.add_argument("--train_dir", help="imagefolder layout: one sub-folder per class")
    data.add_argument("--validation_dir")
    data.add_argument("--train_file", help="parquet, csv, json or arrow file; sensor: a .ts series file")
    data.add_argument("--validation_file")
    data.add_argument("--train_split", default="train")
    data.add_argument("--validation_split", help="default: 'validation' if present, else 'test'")
    data.add_argument("--data_dir", help="a local folder in a dataset's official layout (e.g. PAMAP2_Dataset/)")
    data.add_argument("--image_column_name", default="image")
    data.add_argument("--audio_column_name", default="audio")
    data.add_argument(
        "--audio_normalization",
        default="librispeech",
        choices=[*sorted(DATASET_NORMALIZATION_STATS), "fit"],
        help="log-mel statistics and sampling rate of the speech dataset (docs/method.md §4.3); 'fit': measured on "
        "training clips",
    )
    data.add_argument("--sampling_rate", type=int, help="speech: the clips' rate (default: --audio_normalization's)")
    data.add_argument("--audio_max_length", type=int, help="speech: samples per clip (default 150,526, §4.2)")
    data.add_argument("--n_fft", type=int, help="speech / sensor STFT size (default: the paper's, 2048 / 63)")
    data.add_argument("--hop_length", type=int, help="speech / sensor STFT hop (default: the paper's for the size)")
    data.add_argument("--label_column_name", default="label", help="labels for the kNN monitor; 'none' for none")
    data.add_argument("--max_train_samples", type=int)
    data.add_argument("--max_eval_samples", type=int)
    data.add_argument("--cache_dir")
    data.add_argument("--dataloader_num_workers", type=int, default=0)
    data.add_argument(
        "--skip_bad_examples",
        type=string_to_bool,
        default=False,
        help="speech: replace an unreadable clip by the next readable one, with a warning and a count",
    )
    data.add_argument("--image_size", type=int, default=32, help="inputs are resized to image_size x image_size")
    data.add_argument("--num_channels", type=int, default=3)
    data.add_argument("--normalize_mean", type=float, nargs="+", help="per channel, applied after the viewmaker")
    data.add_argument("--normalize_std", type=float, nargs="+")

    model = parser.add_argument_group("model")
    model.add_argument("--encoder_preset", default="resnet18_cifar", choices=ENCODER_PRESETS)
    model.add_argument("--encoder_depths", type=int, nargs="+", help="blocks per stage (overrides the preset)")
    model.add_argument("--encoder_hidden_sizes", type=int, nargs="+", help="stage widths (overrides the preset)")
    model.add_argument("--encoder_stem_channels", type=int)
    model.add_argument("--embedding_dim", type=int, default=128)
    model.add_argument("--projection_head", default="linear", choices=["linear", "mlp"])
    model.add_argument("--view_mode", default="viewmaker", choices=["viewmaker", "expert", "viewmaker+expert"])
    model.add_argument(
        "--expert_views", default="none", choices=["none", "simclr_image", "waveform_crop_noise", "spectral_masking"]
    )
    model.add_argument("--max_freq_mask", type=int, default=40, help="spectral_masking: widest frequency band")
    model.add_argument("--max_time_mask", type=int, default=40, help="spectral_masking: widest time band")
    model.add_argument("--spectral_noise_std", type=float, default=0.0, help="spectral_masking: noise after masking")
    model.add_argument("--distortion_budget", type=float, default=0.05, help="epsilon (docs/method.md §1)")
    model.add_argument("--budget_norm", default="l1", choices=["l1", "l2", "linf"])
    model.add_argument("--num_res_blocks", type=int, default=3)
    model.add_argument("--viewmaker_activation", default="relu", choices=["relu", "leaky_relu"])
    model.add_argument("--clamp_views", type=string_to_bool, default=True)
    model.add_argument("--frequency_domain", type=string_to_bool, default=False)

    objective = parser.add_argument_group("objective")
    objective.add_argument("--objective", default="simclr", choices=["simclr", "instdisc"])
    objective.add_argument("--simclr_variant", default="nt_xent", choices=["nt_xent", "original"])
    objective.add_argument("--temperature", type=float, default=0.07)
    objective.add_argument("--viewmaker_loss_weight", type=float, default=1.0)
    objective.add_argument("--num_negatives", type=int, default=4096)
    objective.add_argument("--bank_momentum", type=float, default=0.5)

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--learning_rate", type=float, default=0.03, help="encoder SGD")
    optim.add_argument("--momentum", type=float, default=0.9)
    optim.add_argument("--weight_decay", type=float, default=1e-4)
    optim.add_argument("--viewmaker_learning_rate", type=float, default=1e-3, help="viewmaker Adam")
    optim.add_argument("--viewmaker_freeze_epoch", type=int, help="stop updating the viewmaker from this epoch on")
    optim.add_argument("--distortion_budget_start", type=float, help="ramp the budget linearly from this value ...")
    optim.add_argument("--distortion_budget_warmup_epochs", type=float, default=0.0, help="... over these epochs")
    optim.add_argument(
        "--adversarial_update",
        default="one_pass",
        choices=["one_pass", "two_pass"],
        help="one_pass: one forward/backward trains both players; two_pass: the original's update (docs/method.md §3.4)",
    )
    optim.add_argument("--fused_optimizers", type=string_to_bool, default=False, help="fused SGD and Adam kernels")
    optim.add_argument("--max_grad_norm", type=float, help="clip the global gradient norm (the paper does not)")

    train = parser.add_argument_group("training")
    train.add_argument("--output_dir", required=False, default="outputs/pretrain")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--per_device_train_batch_size", type=int, default=256)
    train.add_argument("--per_device_eval_batch_size", type=int, default=256)
    train.add_argument("--num_train_epochs", type=int, default=200)
    train.add_argument("--max_steps", type=int, help="optimizer steps; overrides num_train_epochs (0: save untrained)")
    train.add_argument("--gradient_accumulation_steps", type=int, default=1)
    train.add_argument(
        "--channels_last", type=string_to_bool, default=False, help="NHWC memory format (faster convs on GPUs)"
    )
    train.add_argument(
        "--gradient_checkpointing",
        default="none",
        choices=["none", "selective", "full"],
        help="recompute the viewmaker's activations in backward instead of keeping them: selective keeps the "
        "convolutions' outputs and recomputes the cheap rest, full recomputes the whole network",
    )
    train.add_argument(
        "--torch_compile", type=string_to_bool, default=False, help="compile the model with torch.compile"
    )
    train.add_argument("--torch_compile_backend", default="inductor", help="torch.compile backend (e.g. inductor)")
    train.add_argument(
        "--data_on_device",
        type=string_to_bool,
        default=False,
        help="images: hold the training set on the device as uint8 and make every batch there",
    )
    train.add_argument(
        "--cpu", type=string_to_bool, default=False, help="train on the CPU even if an accelerator is present"
    )
    train.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], help="default: accelerate's config")
    train.add_argument("--checkpointing_steps", help="an integer N (every N steps) or 'epoch'")
    train.add_argument("--checkpoints_total_limit", type=int, default=2, help="keep the newest K checkpoints")
    train.add_argument("--resume_from_checkpoint", help="'latest' (in output_dir) or a checkpoint folder")
    train.add_argument("--report_to", default="tensorboard", help="tensorboard, wandb, all, or none")
    train.add_argument("--logging_steps", type=int, default=10)
    train.add_argument("--knn_k", type=int, default=200)
    train.add_argument("--knn_temperature", type=float, default=0.07)
    train.add_argument(
        "--knn_max_train_samples", type=int, default=10000, help="training examples used as the kNN bank"
    )
    train.add_argument(
        "--push_to_hub", type=string_to_bool, default=False, help="publish the run (models, card, views)"
    )
    train.add_argument("--hub_model_id", help="NAMESPACE/NAME of the model repository (with --push_to_hub)")
    train.add_argument("--hub_private", type=string_to_bool, default=False, help="create the repository private")
    train.add_argument(
        "--max_nonfinite_steps", type=int, default=5, help="stop after this many non-finite steps in a row"
    )
    return parser


def parse_args(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Flags, with a `--config` recipe's values as defaults. `parser` lets other scripts add their own flags."""
    parser = parser or build_parser()
    args = parse_args_with_recipe(parser, argv)
    if args.label_column_name == "none":
        args.label_column_name = None
    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id NAMESPACE/NAME")
    if args.gradient_checkpointing != "none" and args.view_mode == "expert":
        parser.error("--gradient_checkpointing recomputes the viewmaker's activations: --view_mode expert has none")
    if args.adversarial_update == "two_pass" and (args.view_mode == "expert" or args.gradient_accumulation_steps > 1):
        parser.error("--adversarial_update two_pass needs a viewmaker and --gradient_accumulation_steps 1")
    if args.max_steps is not None and args.max_steps < 0:
        parser.error(f"--max_steps must be >= 0, got {args.max_steps}")
    if args.data_on_device and args.domain != "image":
        parser.error(f"--data_on_device holds images: it needs --domain image, got --domain {args.domain}")
    if args.checkpointing_steps not in (None, "epoch") and not str(args.checkpointing_steps).isdigit():
        parser.error(f"--checkpointing_steps must be an integer or 'epoch', got {args.checkpointing_steps!r}")
    return args


def build_model_config(args: argparse.Namespace, num_examples: int) -> ViewmakerPretrainingConfig:
    overrides = {
        "embedding_dim": args.embedding_dim,
        "projection_head": args.projection_head,
        "image_size": args.image_size,
        "depths": args.encoder_depths,
        "hidden_sizes": args.encoder_hidden_sizes,
        "stem_channels": args.encoder_stem_channels,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    encoder = getattr(ContrastiveResNetConfig, args.encoder_preset)(num_channels=args.num_channels, **overrides)
    viewmaker = ViewmakerConfig(
        num_channels=args.num_channels,
        distortion_budget=args.distortion_budget,
        budget_norm=args.budget_norm,
        activation=args.viewmaker_activation,
        clamp=args.clamp_views,
        frequency_domain=args.frequency_domain,
        num_res_blocks=args.num_res_blocks,
    )
    return ViewmakerPretrainingConfig(
        viewmaker_config=viewmaker,
        encoder_config=encoder,
        view_mode=args.view_mode,
        objective=args.objective,
        simclr_variant=args.simclr_variant,
        temperature=args.temperature,
        viewmaker_loss_weight=args.viewmaker_loss_weight,
        num_examples=num_examples if args.objective == "instdisc" else None,
        num_negatives=args.num_negatives,
        bank_momentum=args.bank_momentum,
        normalize_mean=args.normalize_mean,
        normalize_std=args.normalize_std,
    )


def build_optimizer(model: ViewmakerForContrastivePretraining, args: argparse.Namespace) -> AdversarialOptimizer:
    """Encoder SGD and viewmaker Adam (docs/method.md §3.4) behind one optimizer object."""
    fused = {"fused": True} if args.fused_optimizers else {}
    return AdversarialOptimizer(
        torch.optim.SGD(
            model.encoder.parameters(),
            lr=args.learning_rate,
            momentum=args.momentum,
            weight_decay=args.weight_decay,
            **fused,
        ),
        torch.optim.Adam(model.viewmaker.parameters(), lr=args.viewmaker_learning_rate, **fused)
        if model.viewmaker
        else None,
    )


def build_model(args: argparse.Namespace, num_examples: int) -> ViewmakerForContrastivePretraining:
    """The model of the flags, in the channels-last memory format with `--channels_last`."""
    model = ViewmakerForContrastivePretraining(build_model_config(args, num_examples))
    # The step's guard skips any step whose loss is not finite, non-finite inputs included, so the parts' own input
    # checks (a host sync per call) are dropped.
    for part in (model.viewmaker, model.encoder):
        if part is not None:
            part.check_input_values = False
    if args.gradient_checkpointing != "none":
        kwargs = {"use_reentrant": False}
        if args.gradient_checkpointing == "selective":
            kwargs["context_fn"] = convolution_saving_checkpoint_context
        # transformers 5.x renamed it activation checkpointing; `gradient_checkpointing_enable` is the older alias.
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)(kwargs)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def build_train_loader(args: argparse.Namespace, train_examples, collate_fn, accelerator: Accelerator):
    """Shuffled training batches: a `DataLoader` (for `accelerator.prepare`) or, with `--data_on_device`, a
    `DeviceImageLoader` whose images are decoded once and held on the device, sharded over the processes."""
    if not args.data_on_device:
        return DataLoader(
            train_examples,
            batch_size=args.per_device_train_batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=args.dataloader_num_workers,
            collate_fn=collate_fn,
        )
    images = DeviceImageDataset.from_examples(
        train_examples, accelerator.device, num_workers=args.dataloader_num_workers
    )
    return DeviceImageLoader(
        images,
        args.per_device_train_batch_size,
        seed=args.seed,
        num_replicas=accelerator.num_processes,
        rank=accelerator.process_index,
    )


def in_channels_last(make_inputs):
    """`make_inputs` whose 4-D outputs are in the channels-last memory format, to match a channels-last model."""

    def convert(tensor):
        return (
            tensor.contiguous(memory_format=torch.channels_last) if tensor is not None and tensor.ndim == 4 else tensor
        )

    return lambda batch, generator, augment: tuple(convert(t) for t in make_inputs(batch, generator, augment))


def forward_backward(
    accelerator: Accelerator,
    model,
    optimizer,
    batch: dict[str, torch.Tensor],
    make_inputs,
    generator: torch.Generator,
    adversarial_update: str,
) -> torch.Tensor:
    """The forward and backward pass(es) of one batch, leaving the gradients for the caller's `optimizer.step()`.
    Returns the encoder's loss, detached, on the device.

    `make_inputs(batch, generator, augment=True)` gives the model's inputs (see `DataPipeline.make_inputs`).
    `"one_pass"` runs one forward and one backward that train both players. `"two_pass"` is the original update
    (docs/method.md §3.4): an encoder pass and step here, then a fresh pass, with new noise, through the updated encoder,
    whose gradients (the viewmaker's only) the caller's step applies."""
    pixel_values, pixel_values_2 = make_inputs(batch, generator, True)
    inputs = {"pixel_values": pixel_values, "pixel_values_2": pixel_values_2, "indices": batch["indices"]}
    if adversarial_update == "one_pass":
        out = model(**inputs, generator=generator)
        accelerator.backward(out.loss)
        return out.encoder_loss
    out = model(**inputs, generator=generator, adversarial_phase="encoder")
    accelerator.backward(out.loss)
    optimizer.step()
    optimizer.zero_grad()
    accelerator.backward(model(**inputs, generator=generator, adversarial_phase="viewmaker").loss)
    return out.encoder_loss


def optimizer_step(
    accelerator: Accelerator, model, optimizer, nonfinite_losses: torch.Tensor, max_grad_norm: float | None
) -> torch.Tensor:
    """Clip and step both players, unless a loss of this step was not finite on some process: then the step is
    skipped, leaving the weights and the optimizers' states as they were.

    The decision stays on the device (fused optimizers apply it in their kernels; see
    `AdversarialOptimizer.skipping_if`), so the step does not wait for the device.

    Args:
        nonfinite_losses: 0-d count of this process's non-finite losses over the step's micro-batches.

    Returns:
        0-d bool tensor on the device: whether the step was skipped. Read it at logging steps only.
    """
    skipped = accelerator.reduce(nonfinite_losses, reduction="sum") > 0
    if max_grad_norm is not None:
        accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    with optimizer.optimizer.skipping_if(skipped):
        optimizer.step()
    return skipped


def report_skipped_steps(skipped: list[bool], first_step: int, in_a_row: int, max_in_a_row: int) -> int:
    """Warn about each skipped step among steps `first_step`, `first_step + 1`, ... and stop the run once
    `max_in_a_row` were skipped in a row. Returns how many were skipped in a row at the end."""
    for step, was_skipped in enumerate(skipped, start=first_step):
        in_a_row = in_a_row + 1 if was_skipped else 0
        if was_skipped:
            logger.warning(f"non-finite loss at step {step}: step skipped ({in_a_row} in a row)")
        if in_a_row >= max_in_a_row:
            raise RuntimeError(
                f"{in_a_row} non-finite steps in a row: stopping without saving weights; "
                f"resume from the last checkpoint with a smaller learning rate or budget"
            )
    return in_a_row


@torch.no_grad()
def embed(accelerator: Accelerator, model, loader: DataLoader, make_inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings of clean, normalised inputs and their labels for a whole (sharded) split, gathered on every
    process."""
    model = accelerator.unwrap_model(model)
    features, labels = [], []
    for batch in loader:
        embeddings = model.encoder(model._normalize(make_inputs(batch, None, False)[0])).embeddings
        gathered = accelerator.gather_for_metrics((embeddings, batch["labels"]))
        features.append(gathered[0].float())
        labels.append(gathered[1])
    return torch.cat(features), torch.cat(labels)


def describe_hardware(accelerator: Accelerator) -> str:
    """What the run trained on, for the model card."""
    device = accelerator.device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{device.type} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return f"{accelerator.num_processes} x {name}"


def replica_checksums(accelerator: Accelerator, model) -> list[float]:
    """One float64 checksum of all parameters per process; DDP replicas must agree bit for bit."""
    params = [p.detach().double().flatten() for p in accelerator.unwrap_model(model).parameters()]
    weights = torch.arange(1, sum(p.numel() for p in params) + 1, dtype=torch.float64, device=params[0].device)
    checksum = (torch.cat(params) * weights.remainder(7).add(1)).sum().reshape(1)
    return accelerator.gather(checksum).tolist()


def save_final(accelerator: Accelerator, model, processors: dict, args, grid, results) -> None:
    """`viewmaker/` and `encoder/` with their processors, `views.png` and `training_args.json`, published by renaming
    a finished scratch folder so an interrupted save leaves nothing that looks complete."""
    if not accelerator.is_main_process:
        return
    model = accelerator.unwrap_model(model)
    output_dir = Path(args.output_dir)
    scratch = output_dir / ".partial-final"
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    parts = {"encoder": model.encoder, "viewmaker": model.viewmaker}
    for name, part in parts.items():
        if part is not None:
            part.save_pretrained(scratch / name)
            processors[name].save_pretrained(scratch / name)
    if grid is not None:
        grid.save(scratch / "views.png")
    (scratch / "training_args.json").write_text(json.dumps(vars(args), indent=2, sort_keys=True))
    (scratch / "train_results.json").write_text(json.dumps(results, indent=2, sort_keys=True))
    for path in scratch.iterdir():
        target = output_dir / path.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(path, target)
    scratch.rmdir()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report_to = None if args.report_to == "none" else args.report_to
    launched_processes = int(os.environ.get("WORLD_SIZE", "1"))
    accelerator = Accelerator(
        # Several processes on a machine without accelerators (`accelerate launch --multi_gpu` or torchrun) must be
        # told to run on the CPU, or Accelerate treats each of them as an independent single-process job.
        cpu=args.cpu or (launched_processes > 1 and not torch.accelerator.is_available()),
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=report_to,
        project_dir=args.output_dir,
        # Epoch-seeded shuffling: a resumed run sees the same order as an uninterrupted one.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        # Each of the original's two passes leaves one player without gradients.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=args.adversarial_update == "two_pass")],
        dynamo_backend=args.torch_compile_backend if args.torch_compile else "no",
    )
    if accelerator.num_processes != launched_processes:
        raise RuntimeError(
            f"{launched_processes} processes were launched but Accelerate sees {accelerator.num_processes}: they would "
            "train independently and overwrite each other's outputs"
        )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", level=logging.INFO)
    logger.info(accelerator.state, main_process_only=False)
    set_seed(args.seed)
    if accelerator.is_main_process:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)

    pipeline = build_pipeline(args)
    train_examples, eval_examples = pipeline.train, pipeline.validation
    train_loader = build_train_loader(args, train_examples, pipeline.train_collate, accelerator)
    if len(train_loader) == 0:
        raise ValueError(
            f"{len(train_examples)} training examples make no full batch of {args.per_device_train_batch_size}"
        )
    model = build_model(args, num_examples=len(train_examples))
    make_inputs = pipeline.make_inputs
    if args.channels_last:
        make_inputs = in_channels_last(make_inputs)
    optimizer = build_optimizer(model, args)
    model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    # Unshuffled loaders for the kNN monitor: a slice of the training set as the bank, the validation split as queries.
    knn_loaders = None
    if eval_examples is not None and args.label_column_name is not None:
        bank = torch.utils.data.Subset(train_examples, range(min(args.knn_max_train_samples, len(train_examples))))
        knn_loaders = accelerator.prepare(
            *(
                DataLoader(
                    split,
                    batch_size=args.per_device_eval_batch_size,
                    num_workers=args.dataloader_num_workers,
                    collate_fn=pipeline.eval_collate,
                )
                for split in (bank, fixed_items(eval_examples))
            )
        )
    unwrapped = accelerator.unwrap_model(model)

    steps_per_epoch = math.ceil(len(train_loader) / args.gradient_accumulation_steps)
    # --max_steps 0 saves the untrained models (with the run's fitted processors): the random-initialised baseline.
    max_steps = args.max_steps if args.max_steps is not None else args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_steps / steps_per_epoch)

    completed_steps = 0
    checkpoint = (
        resolve_checkpoint(args.output_dir, args.resume_from_checkpoint) if args.resume_from_checkpoint else None
    )
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        completed_steps = load_training_state(checkpoint)["completed_steps"]
        logger.info(f"resumed from {checkpoint} at step {completed_steps}")
    start_epoch, resume_batches = divmod(completed_steps, steps_per_epoch)
    resume_batches *= args.gradient_accumulation_steps

    if report_to:
        accelerator.init_trackers("viewmaker_pretraining", {k: str(v) for k, v in vars(args).items()})
    total_batch = args.per_device_train_batch_size * accelerator.num_processes * args.gradient_accumulation_steps
    logger.info(f"{len(train_examples)} examples, {num_epochs} epochs, {max_steps} steps, batch {total_batch}")
    progress = tqdm(range(max_steps), initial=completed_steps, disable=not accelerator.is_local_main_process)

    # Noise is drawn from a generator seeded by (seed, micro-step, process), so a resumed run draws what an
    # uninterrupted one would have, without relying on the global RNG's position.
    generator = torch.Generator(device=accelerator.device)
    micro_step = completed_steps * args.gradient_accumulation_steps
    nonfinite_in_a_row, window_nonfinite = 0, torch.zeros((), device=accelerator.device)
    # Whether each step since the last logging step was skipped: kept on the device, read with the loss.
    skipped_steps = torch.zeros(args.logging_steps, dtype=torch.bool, device=accelerator.device)
    logged_step = completed_steps
    running = {"encoder_loss": torch.zeros((), device=accelerator.device), "batches": 0}
    grid, started = None, time.perf_counter()
    run_started, loss_history, knn_result, skipped_examples = started, [], None, 0
    checkpoint_every = int(args.checkpointing_steps) if str(args.checkpointing_steps).isdigit() else None

    for epoch in range(start_epoch, num_epochs):
        model.train()
        train_loader.set_epoch(epoch)
        if hasattr(train_examples, "set_epoch"):  # datasets that draw new random windows each epoch (Pamap2)
            train_examples.set_epoch(epoch)
        optimizer.optimizer.viewmaker_frozen = (
            args.viewmaker_freeze_epoch is not None and epoch >= args.viewmaker_freeze_epoch
        )
        loader = train_loader
        if epoch == start_epoch and resume_batches:
            loader = (
                train_loader.skip_first_batches(resume_batches)
                if args.data_on_device
                else accelerator.skip_first_batches(train_loader, resume_batches)
            )
        for batch in loader:
            with accelerator.accumulate(model):
                if unwrapped.viewmaker is not None:
                    unwrapped.viewmaker.config.distortion_budget = distortion_budget_at(
                        completed_steps / steps_per_epoch,
                        args.distortion_budget,
                        args.distortion_budget_start,
                        args.distortion_budget_warmup_epochs,
                    )
                generator.manual_seed(
                    (args.seed * 1_000_003 + micro_step) * accelerator.num_processes + accelerator.process_index
                )
                micro_step += 1
                encoder_loss = forward_backward(
                    accelerator, model, optimizer, batch, make_inputs, generator, args.adversarial_update
                )
                window_nonfinite += ~torch.isfinite(encoder_loss)
                running["encoder_loss"] += encoder_loss
                running["batches"] += 1
                if "num_skipped" in batch:  # unreadable examples replaced under --skip_bad_examples
                    skipped_examples += batch["num_skipped"]
                if accelerator.sync_gradients:
                    skipped_steps[completed_steps - logged_step] = optimizer_step(
                        accelerator, model, optimizer, window_nonfinite, args.max_grad_norm
                    )
                    window_nonfinite.zero_()
                optimizer.zero_grad()

            if not accelerator.sync_gradients:
                continue
            completed_steps += 1
            progress.update(1)
            if completed_steps % args.logging_steps == 0 or completed_steps == max_steps:
                nonfinite_in_a_row = report_skipped_steps(
                    skipped_steps[: completed_steps - logged_step].tolist(),
                    logged_step,
                    nonfinite_in_a_row,
                    args.max_nonfinite_steps,
                )
                logged_step = completed_steps
                loss = accelerator.reduce(running["encoder_loss"], reduction="mean").item() / running["batches"]
                elapsed = time.perf_counter() - started
                metrics = {
                    "train/encoder_loss": loss,
                    "train/distortion_budget": unwrapped.viewmaker.config.distortion_budget
                    if unwrapped.viewmaker
                    else 0.0,
                    "train/examples_per_second": running["batches"]
                    * args.per_device_train_batch_size
                    * accelerator.num_processes
                    / elapsed,
                    "train/epoch": completed_steps / steps_per_epoch,
                }
                if torch.is_tensor(skipped_examples):
                    metrics["train/skipped_examples"] = accelerator.reduce(skipped_examples, reduction="sum").item()
                    if metrics["train/skipped_examples"]:
                        logger.warning(f"{metrics['train/skipped_examples']} unreadable examples skipped so far")
                progress.set_postfix(loss=f"{loss:.4f}")
                loss_history.append((completed_steps, loss))
                accelerator.log(metrics, step=completed_steps)
                running["encoder_loss"].zero_()
                running["batches"], started = 0, time.perf_counter()
            if checkpoint_every and completed_steps % checkpoint_every == 0:
                save_checkpoint(
                    accelerator,
                    args.output_dir,
                    completed_steps,
                    {"completed_steps": completed_steps, "epoch": epoch},
                    args.checkpoints_total_limit,
                )
            if completed_steps >= max_steps:
                break

        if knn_loaders is not None:
            model.eval()
            bank_features, bank_labels = embed(accelerator, model, knn_loaders[0], make_inputs)
            query_features, query_labels = embed(accelerator, model, knn_loaders[1], make_inputs)
            num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
            accuracy = knn_accuracy(
                bank_features, bank_labels, query_features, query_labels, num_classes, args.knn_k, args.knn_temperature
            )
            logger.info(f"epoch {epoch}: kNN accuracy {accuracy:.4f}")
            knn_result = accuracy
            accelerator.log({"eval/knn_accuracy": accuracy}, step=completed_steps)
        if unwrapped.viewmaker is not None and accelerator.is_main_process:
            grid = pipeline.view_grid(unwrapped.viewmaker)
            for tracker in accelerator.trackers:
                if tracker.name == "tensorboard":
                    pixels = np.asarray(grid.convert("RGB"))[None]
                    tracker.log_images({"views": pixels}, step=completed_steps, dataformats="NHWC")
                elif hasattr(tracker, "log_images"):
                    tracker.log_images({"views": [grid]}, step=completed_steps)
        if args.checkpointing_steps == "epoch":
            save_checkpoint(
                accelerator,
                args.output_dir,
                completed_steps,
                {"completed_steps": completed_steps, "epoch": epoch + 1},
                args.checkpoints_total_limit,
            )
        if completed_steps >= max_steps:
            break

    accelerator.wait_for_everyone()
    checksums = replica_checksums(accelerator, model)
    if len(set(checksums)) != 1:
        raise RuntimeError(f"the processes' parameters diverged (checksums {checksums}): not saving")
    results = {
        "completed_steps": completed_steps,
        "train_runtime_seconds": time.perf_counter() - run_started,
        "encoder_loss_history": loss_history,
        "skipped_examples": int(accelerator.reduce(skipped_examples, reduction="sum").item())
        if torch.is_tensor(skipped_examples)
        else 0,
        "knn_accuracy": knn_result,
        "num_processes": accelerator.num_processes,
        "hardware": describe_hardware(accelerator),
        "mixed_precision": accelerator.mixed_precision,
        "replica_parameter_checksums": checksums,
    }
    save_final(accelerator, model, pipeline.processors, args, grid, results)
    if accelerator.is_main_process:
        write_model_card(args.output_dir, repo_id=args.hub_model_id or Path(args.output_dir).name)
        if args.push_to_hub:
            logger.info(f"pushed to {push_run_to_hub(args.output_dir, args.hub_model_id, private=args.hub_private)}")
    # Waiting here (without the GIL) also lets gloo's worker threads release the tensors of the last collectives;
    # tearing the process group down while one of them still waits for the GIL deadlocks at exit.
    accelerator.wait_for_everyone()
    accelerator.end_training()
    logger.info(f"saved to {args.output_dir}")


if __name__ == "__main__":
    main()
