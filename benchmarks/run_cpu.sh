#!/usr/bin/env bash
# Every CPU measurement of benchmarks/RESULTS.md, as JSON lines on stdout (about 15 minutes on 2 cores).
#   bash benchmarks/run_cpu.sh | tee benchmarks/cpu_results.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
bench() { python training/benchmark.py --device cpu "$@" 2>/dev/null | tail -n 1; }
CIFAR=training/configs/cifar10_viewmaker_simclr.yaml

# One-pass (without, with selective and with full activation checkpointing of the viewmaker) against the original
# two-pass update, alternated so that all see the same machine state.
for round in 1 2; do
    for options in "--adversarial_update one_pass" "--adversarial_update one_pass --gradient_checkpointing selective" \
                   "--adversarial_update one_pass --gradient_checkpointing full" "--adversarial_update two_pass"; do
        bench --config $CIFAR --per_device_train_batch_size 64 --steps 5 --warmup_steps 1 $options
    done
done
# The GPU-path options on CPU: channels-last memory format and fused optimizers, alternated with the default.
for round in 1 2; do
    for options in "" "--channels_last true --fused_optimizers true"; do
        bench --config $CIFAR --per_device_train_batch_size 64 --steps 3 --warmup_steps 1 $options
    done
done
# Step time against batch size, and against input size.
for batch in 32 64 128 256; do
    bench --config $CIFAR --per_device_train_batch_size $batch --steps 3 --warmup_steps 1
done
for size in 32 64 112; do
    bench --config $CIFAR --per_device_train_batch_size 32 --image_size $size --steps 3 --warmup_steps 1
done
for round in 1 2 3; do
    python benchmarks/logmel_vs_librosa.py --clips 64 --repeats 20
done
python benchmarks/memory_soak.py --steps 1000
