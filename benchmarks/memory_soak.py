#!/usr/bin/env python
"""Resident memory of a long, tiny pretraining run: does it grow after warm-up?

    python benchmarks/memory_soak.py --steps 1000

Runs training/pretrain.py (quickstart recipe, tiny models, InstDisc so the memory bank is exercised, TensorBoard
logging, a kNN evaluation and a view grid every epoch of 16 steps, a checkpoint every 250 steps) in a subprocess,
samples its resident set size twice a second, and prints one JSON object: the RSS after warm-up (the first
`--warmup_fraction` of the samples), at the end, the largest value, and the growth between the warm-up point and
the end.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--warmup_fraction", type=float, default=0.2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as output_dir:
        command = [
            sys.executable,
            str(ROOT / "training" / "pretrain.py"),
            "--config",
            str(ROOT / "training" / "configs" / "quickstart.yaml"),
            "--output_dir",
            output_dir,
            "--max_steps",
            str(args.steps),
            "--objective",
            "instdisc",
            "--num_negatives",
            "256",
            "--image_size",
            "16",
            "--encoder_depths",
            "1",
            "1",
            "--encoder_hidden_sizes",
            "8",
            "16",
            "--encoder_stem_channels",
            "8",
            "--embedding_dim",
            "16",
            "--num_res_blocks",
            "1",
            "--per_device_train_batch_size",
            "16",
            "--max_train_samples",
            "256",
            "--max_eval_samples",
            "64",
            "--knn_max_train_samples",
            "256",
            "--logging_steps",
            "10",
            "--checkpointing_steps",
            "250",
            "--report_to",
            "tensorboard",
        ]
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        watched, samples = psutil.Process(process.pid), []
        while process.poll() is None:
            try:
                samples.append(watched.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.5)
        if process.returncode != 0:
            raise SystemExit(f"the training run failed with exit code {process.returncode}")
        results = json.loads((Path(output_dir) / "train_results.json").read_text())
    warm = samples[int(len(samples) * args.warmup_fraction)]
    end = samples[-1]
    print(
        json.dumps(
            {
                "steps": results["completed_steps"],
                "seconds": time.perf_counter() - started,
                "samples": len(samples),
                "rss_after_warmup_mb": warm,
                "rss_end_mb": end,
                "rss_max_mb": max(samples),
                "growth_after_warmup_mb": end - warm,
            }
        )
    )


if __name__ == "__main__":
    main()
