#!/usr/bin/env python
"""Throughput of the real pretraining step on synthetic inputs of a recipe's shape.

    python training/benchmark.py --config training/configs/cifar10_viewmaker_simclr.yaml \
        --per_device_train_batch_size 64 --steps 10 --device cpu --adversarial_update two_pass

runs `--warmup_steps` untimed steps, then `--steps` timed steps of training/pretrain.py's own `forward_backward` and
optimizer step, and prints one JSON object as its last line: examples_per_second, step_seconds_median, peak_memory_mb
(CUDA: peak allocated; CPU: the process's peak resident memory), device, recipe, batch_size, adversarial_update.
Every flag of training/pretrain.py is accepted too (mixed precision, model sizes, ...).
"""

import json
import resource
import statistics
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

import pretrain
from hf_viewmaker import ViewmakerForContrastivePretraining
from hf_viewmaker.data import expert_views_for
from hf_viewmaker.views import WaveformCropNoiseViews


def build_parser():
    parser = pretrain.build_parser()
    bench = parser.add_argument_group("benchmark")
    bench.add_argument("--steps", type=int, default=10, help="timed steps")
    bench.add_argument("--warmup_steps", type=int, default=2, help="untimed steps first")
    bench.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    return parser


def parse_args(argv: list[str] | None = None):
    return pretrain.parse_args(argv, build_parser())


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    accelerator = Accelerator(
        cpu=args.device == "cpu",
        mixed_precision=args.mixed_precision,
        dynamo_backend=args.torch_compile_backend if args.torch_compile else "no",
    )
    set_seed(args.seed)
    batch_size = args.per_device_train_batch_size
    model = ViewmakerForContrastivePretraining(pretrain.build_model_config(args, num_examples=max(batch_size, 4096)))
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = pretrain.build_optimizer(model, args)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    # Synthetic inputs stand for the model's inputs; handcrafted views that act on them (image augmentations,
    # spectrogram masking) are applied as in training, waveform views (which act before the log-mel) are not.
    expert_views = expert_views_for(args, args.domain) if "expert" in args.view_mode else None
    if isinstance(expert_views, WaveformCropNoiseViews):
        expert_views = None

    def make_inputs(batch, generator, augment):
        if augment and expert_views is not None:
            return expert_views(batch["pixel_values"], generator), expert_views(batch["pixel_values"], generator)
        return batch["pixel_values"], None

    if args.channels_last:
        make_inputs = pretrain.in_channels_last(make_inputs)

    device = accelerator.device
    batch = {
        "pixel_values": torch.rand(batch_size, args.num_channels, args.image_size, args.image_size, device=device),
        "indices": torch.randint(0, max(batch_size, 4096), (batch_size,), device=device),
    }
    generator = torch.Generator(device=device).manual_seed(args.seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    times = []
    for step in range(args.warmup_steps + args.steps):
        started = time.perf_counter()
        pretrain.forward_backward(accelerator, model, optimizer, batch, make_inputs, generator, args.adversarial_update)
        optimizer.step()
        optimizer.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= args.warmup_steps:
            times.append(time.perf_counter() - started)

    median = statistics.median(times)
    result = {
        "recipe": Path(args.config).stem if args.config else None,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "adversarial_update": args.adversarial_update,
        "mixed_precision": accelerator.mixed_precision,
        "batch_size": batch_size,
        "input_shape": [args.num_channels, args.image_size, args.image_size],
        "steps": args.steps,
        "step_seconds_median": median,
        "step_seconds_min": min(times),
        "examples_per_second": batch_size / median,
        "peak_memory_mb": peak_memory_mb(device),
        "torch_threads": torch.get_num_threads(),
        "channels_last": args.channels_last,
        "fused_optimizers": args.fused_optimizers,
        "torch_compile": args.torch_compile,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
