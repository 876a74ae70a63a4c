#!/usr/bin/env bash
# Every CPU measurement of benchmarks/RESULTS.md, as JSON lines on stdout (about 20 minutes on the 2 Xeon cores of
# RESULTS.md before the side-by-side size comparisons were added, which take about 20 more on the AMD EPYC cores).
#   bash benchmarks/run_cpu.sh | tee benchmarks/cpu_results.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
bench() { python training/benchmark.py --device cpu "$@" 2>/dev/null | tail -n 1; }
CIFAR=training/configs/cifar10_viewmaker_simclr.yaml

# Cost against the work: batch 32 beside batch 256, and 32x32 inputs beside 112x112, each step of the one followed by
# one of the other on the same model; with glibc's default malloc, then keeping freed memory (the scripts' default).
for malloc in false true; do
    bench --config $CIFAR --per_device_train_batch_size 32 --compare_batch_size 256 --steps 3 --warmup_steps 1 \
        --retain_freed_host_memory $malloc
    bench --config $CIFAR --per_device_train_batch_size 32 --compare_image_size 112 --steps 3 --warmup_steps 1 \
        --retain_freed_host_memory $malloc
done
# One-pass against the original two-pass update (docs/method.md §3.4: one viewmaker and one encoder call per view),
# by default, with channels-last and fused optimizers (for both), and with the viewmaker's selective or full
# activation checkpointing. Speed: in one process, each one-pass step followed by a two-pass step on the same model,
# so that slow drifts of the shared machine hit both alike.
for options in "" "--channels_last true --fused_optimizers true" "--gradient_checkpointing selective" \
               "--gradient_checkpointing full"; do
    bench --config $CIFAR --per_device_train_batch_size 64 --steps 10 --warmup_steps 1 --interleave_two_pass true $options
done
# Peak resident memory: each update in its own process, alternated.
for round in 1 2; do
    for options in "--adversarial_update one_pass" "--adversarial_update one_pass --gradient_checkpointing selective" \
                   "--adversarial_update one_pass --gradient_checkpointing full" "--adversarial_update two_pass"; do
        bench --config $CIFAR --per_device_train_batch_size 64 --steps 3 --warmup_steps 1 $options
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
