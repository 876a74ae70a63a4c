#!/usr/bin/env bash
# Every GPU measurement of benchmarks/RESULTS.md ("GPU path"), sized for about 6 minutes on one H100 (not yet timed):
# prints the card's name, then one JSON line per measurement, each also appended to $RESULTS (default
# benchmarks/gpu_results.jsonl).
#   bash benchmarks/run_gpu.sh
# The runs' logs go to $LOG (a temporary file unless given); a failing run prints the end of it and stops the script.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
RESULTS=${RESULTS:-benchmarks/gpu_results.jsonl}
LOG=${LOG:-$(mktemp)}
trap 'echo "a benchmark failed; the end of $LOG:" >&2; tail -n 40 "$LOG" >&2' ERR
record() { "$@" 2>>"$LOG" | tail -n 1 | tee -a "$RESULTS"; }
bench() { record "$PYTHON" training/benchmark.py --device cuda "$@"; }
CIFAR=(--config training/configs/cifar10_viewmaker_simclr.yaml)
GPU_PATH=(--mixed_precision bf16 --channels_last true --fused_optimizers true --data_on_device true)
STEPS=(--steps 30 --warmup_steps 5)

nvidia-smi --query-gpu=name --format=csv
# The target: the CIFAR-10 viewmaker SimCLR recipe (ResNet-18, batch 256) on the GPU path, eager and compiled.
bench "${CIFAR[@]}" "${GPU_PATH[@]}" "${STEPS[@]}"
bench "${CIFAR[@]}" "${GPU_PATH[@]}" "${STEPS[@]}" --torch_compile true
# The same recipe with the default options: float32, contiguous (NCHW) tensors, unfused optimizers, one fixed batch.
bench "${CIFAR[@]}" "${STEPS[@]}"
# The original two-pass update on the GPU path (one-pass is the first line), and one-pass with the viewmaker's
# selective activation checkpointing: the allocator's peaks of the three.
bench "${CIFAR[@]}" "${GPU_PATH[@]}" "${STEPS[@]}" --adversarial_update two_pass
bench "${CIFAR[@]}" "${GPU_PATH[@]}" "${STEPS[@]}" --gradient_checkpointing selective
# The SimCLR expert views made on the GPU from the uint8 images there.
bench --config training/configs/cifar10_expert_simclr.yaml "${GPU_PATH[@]}" "${STEPS[@]}"
# Step time against batch size (256 is the first line) and against input size (32 x 32 is the first line).
for batch in 32 64 128; do
    bench "${CIFAR[@]}" "${GPU_PATH[@]}" "${STEPS[@]}" --per_device_train_batch_size "$batch"
done
for size in 64 112; do
    bench "${CIFAR[@]}" "${GPU_PATH[@]}" --steps 10 --warmup_steps 3 --image_size "$size"
done
# The batched log-mel front end on the GPU against librosa on the CPU.
record "$PYTHON" benchmarks/logmel_vs_librosa.py --clips 64 --repeats 5 --device cuda
