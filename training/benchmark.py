#!/usr/bin/env python
"""Throughput and model FLOPs utilisation of the real pretraining step on synthetic inputs of a recipe's shape.

    python training/benchmark.py --config training/configs/cifar10_viewmaker_simclr.yaml \
        --per_device_train_batch_size 64 --steps 10 --device cpu --adversarial_update two_pass

runs `--warmup_steps` untimed steps, then `--steps` timed steps of the pretraining step
(`hf_viewmaker.adversarial.AdversarialStep`, as training/pretrain.py takes it), and prints one JSON object as its last line: examples_per_second, step_seconds_median,
peak_memory_mb (CUDA: peak allocated; CPU: the process's peak resident memory), device, recipe, batch_size,
adversarial_update, ..., and the model FLOPs utilisation: flops_per_step (counted over one step by
`torch.utils.flop_counter.FlopCounterMode`), achieved_tflops, matmul_tflops (the device's measured dense matmul rate
in the run's compute dtype) and mfu (their ratio); on CUDA also host_syncs_per_step (counted by the profiler).

With `--interleave_two_pass true` every timed one-pass step is followed by a timed step of the original two-pass update
(without activation checkpointing, whatever `--gradient_checkpointing` says) on the same model, so that slow drifts of
a shared machine hit both alike; the JSON then also holds
two_pass_step_seconds_median, two_pass_examples_per_second, speedup_over_two_pass, two_pass_flops_per_step and
two_pass_flops_ratio (the speed-up the arithmetic alone allows; peak_memory_mb then covers both updates: compare memory
in separate runs).

With `--compare_batch_size N` and/or `--compare_image_size S`, every timed step is followed by a timed step at that
batch and input size on the same model, so that one run measures how the cost scales with the work; the JSON then
also holds `compared` (the other size's batch_size, input_shape, step_seconds_median, examples_per_second,
flops_per_step and mfu) and its ratios to the run's size, `compared_examples_per_second_ratio` and
`compared_mfu_ratio`.

Batches are one synthetic tensor on the device, or with `--data_on_device true` drawn every step by a
`DeviceImageLoader` from a synthetic uint8 image set held on the device (`--max_train_samples` images, by default
CIFAR-10's 50,000). Every flag of training/pretrain.py is accepted too (mixed precision, model sizes, ...).
"""

import itertools
import json
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from accelerate.utils import set_seed
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from hf_viewmaker.adversarial import (
    AdversarialStep,
    build_adversarial_optimizer,
    in_channels_last,
    make_accelerator,
    retain_freed_host_memory,
)
from hf_viewmaker.arguments import PretrainingRun, parse_arguments
from hf_viewmaker.data import expert_views_for, image_processor
from hf_viewmaker.data.device_images import DeviceImageDataset, DeviceImageLoader
from hf_viewmaker.views import ImuViews, SpectralMaskingViews, WaveformCropNoiseViews

import pretrain

# The timed matmul (size, repeats) per device: large enough for the device's dense rate, small enough on CPUs for CI.
MATMUL = {"cuda": (8192, 50), "cpu": (512, 10)}
# CIFAR-10's training set: the default size of the synthetic set held on the device.
SYNTHETIC_EXAMPLES = 50_000


@dataclass
class BenchmarkArguments:
    """What to time."""

    _argument_group_name = "benchmark"

    steps: int = field(default=10, metadata={"help": "timed steps"})
    warmup_steps: int = field(default=2, metadata={"help": "untimed steps first"})
    device: Literal["cpu", "cuda"] | None = field(
        default=None, metadata={"help": "cpu or cuda (default: cuda if available)"}
    )
    interleave_two_pass: bool = field(
        default=False,
        metadata={
            "help": "also time the original two-pass update, one step after each one-pass step on the same model, so "
            "that both see the same machine state, and report `speedup_over_two_pass`"
        },
    )
    compare_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "also time steps at this batch size, one after each step of the run's on the same model, and "
            "report `compared` and its ratios to the run's examples/s and MFU"
        },
    )
    compare_image_size: int | None = field(
        default=None,
        metadata={"help": "the same at this input size (with --compare_batch_size: at both)"},
    )
    retain_freed_host_memory: bool = field(
        default=True,
        metadata={
            "help": "on the CPU, keep freed memory for reuse as training/pretrain.py does "
            "(hf_viewmaker.adversarial.retain_freed_host_memory); false measures glibc's default"
        },
    )

    @property
    def compares_sizes(self) -> bool:
        """Whether another batch or input size is timed beside the run's."""
        return self.compare_batch_size is not None or self.compare_image_size is not None


def build_parser():
    return pretrain.build_parser(extra_groups=(BenchmarkArguments,))


def parse_args(argv: list[str] | None = None) -> tuple[PretrainingRun, BenchmarkArguments, str | None]:
    """The pretraining groups, the benchmark's, and the recipe's path (for the report)."""
    parser = build_parser()
    *groups, bench = parse_arguments(parser, argv)
    run = PretrainingRun(*groups)
    pretrain.check_run(parser, run)
    if bench.interleave_two_pass and (
        run.optimization.adversarial_update != "one_pass" or not run.views.uses_viewmaker
    ):
        parser.error(
            "--interleave_two_pass compares one-pass with two-pass: it needs --adversarial_update one_pass "
            "and a viewmaker"
        )
    if bench.compares_sizes and (
        bench.interleave_two_pass or run.training.data_on_device or run.views.uses_expert_views
    ):
        parser.error(
            "--compare_batch_size and --compare_image_size time synthetic batches of the viewmaker's inputs: they "
            "exclude --interleave_two_pass, --data_on_device and handcrafted views"
        )
    if bench.device is None:
        bench.device = "cuda" if torch.cuda.is_available() else "cpu"
    recipe, _ = parser.parse_known_args(argv)
    return run, bench, recipe.config


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: torch.device, dtype: torch.dtype) -> float:
    """The device's dense matmul rate in `dtype`, in TFLOP/s: timed products of two square matrices."""
    size, repeats = MATMUL[device.type]
    a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
    out = a @ b  # warm-up: library handles and kernel choice
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        torch.matmul(a, b, out=out)
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e12


def count_flops(step: Callable[[], None]) -> int:
    """FLOPs of the matmuls and convolutions of `step()`, forward and backward."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def count_host_syncs(step: Callable[[], None]) -> int:
    """CUDA synchronisations the host waits on during `step()`, from the profiler's runtime calls (less those of
    an empty profile, for the profiler's own)."""

    def syncs(function: Callable[[], None]) -> int:
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
            function()
        return sum("Synchronize" in event.name for event in profiler.events())

    return syncs(step) - syncs(lambda: None)


def synthetic_device_images(run: PretrainingRun, device: torch.device) -> DeviceImageDataset:
    """Random uint8 images of the recipe's shape, held on `device`."""
    size = run.inputs.image_size
    shape = (run.data.max_train_samples or SYNTHETIC_EXAMPLES, run.inputs.num_channels, size, size)
    pixels = torch.randint(0, 256, shape, dtype=torch.uint8, device=device)
    return DeviceImageDataset(pixels, torch.zeros(shape[0], dtype=torch.long, device=device))


def synthetic_batches(
    batch_size: int, num_channels: int, image_size: int, num_examples: int, device: torch.device
) -> Iterator[dict[str, torch.Tensor]]:
    """One random batch of this shape, again and again."""
    return itertools.repeat(
        {
            "pixel_values": torch.rand(batch_size, num_channels, image_size, image_size, device=device),
            "indices": torch.randint(0, num_examples, (batch_size,), device=device),
        }
    )


def endless(loader: DeviceImageLoader) -> Iterator[dict[str, torch.Tensor]]:
    for epoch in itertools.count():
        loader.set_epoch(epoch)
        yield from loader


def main(argv: list[str] | None = None) -> dict:
    run, bench, recipe = parse_args(argv)
    training, inputs, optimization = run.training, run.inputs, run.optimization
    accelerator = make_accelerator(
        cpu=bench.device == "cpu",
        mixed_precision=training.mixed_precision,
        dynamo_backend=training.torch_compile_backend if training.torch_compile else "no",
    )
    set_seed(training.seed)
    device = accelerator.device
    retains_freed_memory = device.type == "cpu" and bench.retain_freed_host_memory and retain_freed_host_memory()
    batch_size = training.per_device_train_batch_size
    if training.data_on_device:
        images = synthetic_device_images(run, device)
        num_examples, batches = len(images), endless(DeviceImageLoader(images, batch_size, seed=training.seed))
    else:
        num_examples = max(batch_size, bench.compare_batch_size or 0, 4096)
        batches = synthetic_batches(batch_size, inputs.num_channels, inputs.image_size, num_examples, device)
    compared_size = (bench.compare_batch_size or batch_size, bench.compare_image_size or inputs.image_size)
    compared_batches = None
    if bench.compares_sizes:
        compared_batches = synthetic_batches(
            compared_size[0], inputs.num_channels, compared_size[1], num_examples, device
        )
    # The statistics pretraining normalises image views with (spectrograms arrive normalised).
    processor = image_processor(inputs) if run.data.domain == "image" else None
    model = pretrain.build_model(run, processor, num_examples)
    players = build_adversarial_optimizer(model, optimization)
    model, optimizer = accelerator.prepare(model, players)
    model.train()
    # Handcrafted views that act on the model's inputs (image augmentations, spectrogram masking) are applied as in
    # training; waveform views (which act before the log-mel) and the imu views of raw windows are not (the imu
    # views' spectral masking is).
    expert_views = expert_views_for(run.views, run.data.domain, inputs.image_size)
    if isinstance(expert_views, WaveformCropNoiseViews):
        expert_views = None
    elif isinstance(expert_views, ImuViews):
        views = run.views
        expert_views = SpectralMaskingViews(views.max_freq_mask, views.max_time_mask, views.spectral_noise_std)

    def make_inputs(batch, generator, augment):
        if augment and expert_views is not None:
            return expert_views(batch["pixel_values"], generator), expert_views(batch["pixel_values"], generator)
        return batch["pixel_values"], None

    if training.channels_last:
        make_inputs = in_channels_last(make_inputs)
    generator = torch.Generator(device=device).manual_seed(training.seed)
    no_nonfinite_losses = torch.zeros((), device=device)
    eager = accelerator.unwrap_model(model, keep_torch_compile=False)
    steps = {
        compiled: AdversarialStep(
            accelerator,
            model if compiled else eager,
            optimizer,
            players,
            make_inputs,
            optimization.adversarial_update,
            optimization.max_grad_norm,
        )
        for compiled in (True, False)
    }

    def step(compiled: bool = True, adversarial_update: str | None = None, source=batches) -> None:
        """One training step as training/pretrain.py takes it, from drawing the batch to the optimizer step."""
        steps[compiled].forward_backward(next(source), generator, update=adversarial_update)
        steps[compiled].apply(no_nonfinite_losses)
        optimizer.zero_grad()

    # Counted on the eager model: the FLOPs are the same compiled, and the counter cannot see inside compiled graphs.
    flops_per_step = count_flops(lambda: step(compiled=False))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # What is timed, in turn at every step: (update, batches) by name.
    variants = {"run": (optimization.adversarial_update, batches)}
    if bench.interleave_two_pass:
        variants["two_pass"] = ("two_pass", batches)
    if compared_batches is not None:
        variants["compared"] = (optimization.adversarial_update, compared_batches)
    times: dict[str, list[float]] = {name: [] for name in variants}
    checkpointing = training.gradient_checkpointing != "none"
    for index in range(bench.warmup_steps + bench.steps):
        for name, (adversarial_update, source) in variants.items():
            if bench.interleave_two_pass:  # the original update, the baseline, keeps all activations
                eager.viewmaker.gradient_checkpointing = checkpointing and adversarial_update == "one_pass"
            started = time.perf_counter()
            step(adversarial_update=adversarial_update, source=source)
            synchronize(device)
            if index >= bench.warmup_steps:
                times[name].append(time.perf_counter() - started)
    host_syncs = count_host_syncs(step) if device.type == "cuda" else None

    median = statistics.median(times["run"])
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(accelerator.mixed_precision, torch.float32)
    achieved_tflops = flops_per_step / median / 1e12
    peak_tflops = matmul_tflops(device, dtype)
    result = {
        "recipe": Path(recipe).stem if recipe else None,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "adversarial_update": optimization.adversarial_update,
        "mixed_precision": accelerator.mixed_precision,
        "batch_size": batch_size,
        "input_shape": [inputs.num_channels, inputs.image_size, inputs.image_size],
        "steps": bench.steps,
        "step_seconds_median": median,
        "step_seconds_min": min(times["run"]),
        "examples_per_second": batch_size / median,
        "peak_memory_mb": peak_memory_mb(device),
        "torch_threads": torch.get_num_threads(),
        "retain_freed_host_memory": retains_freed_memory,
        "channels_last": training.channels_last,
        "gradient_checkpointing": training.gradient_checkpointing,
        "fused_optimizers": optimization.fused_optimizers,
        "torch_compile": training.torch_compile,
        "data_on_device": training.data_on_device,
        "flops_per_step": flops_per_step,
        "achieved_tflops": achieved_tflops,
        "matmul_tflops": peak_tflops,
        "matmul_dtype": str(dtype).removeprefix("torch."),
        "mfu": achieved_tflops / peak_tflops,
        "host_syncs_per_step": host_syncs,
    }
    if bench.interleave_two_pass:
        two_pass_median = statistics.median(times["two_pass"])
        two_pass_flops = count_flops(lambda: step(compiled=False, adversarial_update="two_pass"))
        result |= {
            "two_pass_step_seconds_median": two_pass_median,
            "two_pass_examples_per_second": batch_size / two_pass_median,
            "speedup_over_two_pass": two_pass_median / median,
            "two_pass_flops_per_step": two_pass_flops,
            # The speed-up the arithmetic alone would allow.
            "two_pass_flops_ratio": two_pass_flops / flops_per_step,
        }
    if compared_batches is not None:
        compared_median = statistics.median(times["compared"])
        compared_flops = count_flops(lambda: step(compiled=False, source=compared_batches))
        compared_mfu = compared_flops / compared_median / 1e12 / peak_tflops
        result |= {
            "compared": {
                "batch_size": compared_size[0],
                "input_shape": [inputs.num_channels, compared_size[1], compared_size[1]],
                "step_seconds_median": compared_median,
                "examples_per_second": compared_size[0] / compared_median,
                "flops_per_step": compared_flops,
                "mfu": compared_mfu,
            },
            "compared_examples_per_second_ratio": compared_size[0] / compared_median / result["examples_per_second"],
            "compared_mfu_ratio": compared_mfu / result["mfu"],
        }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
