"""training/benchmark.py in its seconds-long smoke mode, so that it cannot rot."""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import TINY_MODEL

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--config",
    str(REPO_ROOT / "training" / "configs" / "quickstart.yaml"),
    "--steps",
    "2",
    "--warmup_steps",
    "1",
    "--per_device_train_batch_size",
    "8",
    *TINY_MODEL,
    "--device",
    "cpu",
]


def _benchmark(*options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "training" / "benchmark.py"), *TINY, *options],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )


def _measured(*options: str) -> dict:
    """The JSON line a successful benchmark run with `options` prints last."""
    result = _benchmark(*options)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("update", ["one_pass", "two_pass"])
def test_benchmark_prints_its_measurements_as_json(update):
    measured = _measured("--adversarial_update", update)
    assert measured["adversarial_update"] == update and measured["batch_size"] == 8
    assert measured["device"] == "cpu" and measured["recipe"] == "quickstart"
    assert measured["examples_per_second"] > 0 and measured["step_seconds_median"] > 0
    assert measured["peak_memory_mb"] > 0


def test_interleaved_two_pass_steps_are_timed_beside_one_pass():
    measured = _measured("--interleave_two_pass", "true", "--gradient_checkpointing", "selective")
    assert measured["adversarial_update"] == "one_pass" and measured["two_pass_examples_per_second"] > 0
    # The original's step redoes a viewmaker and an encoder forward: more arithmetic, by less than two passes' worth.
    assert 1.2 < measured["two_pass_flops_ratio"] < 2.0
    assert measured["speedup_over_two_pass"] == pytest.approx(
        measured["examples_per_second"] / measured["two_pass_examples_per_second"]
    )
    refused = _benchmark("--interleave_two_pass", "true", "--adversarial_update", "two_pass")
    assert refused.returncode != 0 and "--interleave_two_pass" in refused.stderr


@pytest.mark.parametrize(
    "options",
    [
        ["--channels_last", "true", "--fused_optimizers", "true"],
        ["--torch_compile", "true", "--torch_compile_backend", "aot_eager"],
    ],
    ids=["channels_last_fused", "compiled"],
)
def test_gpu_path_options_run_on_cpu(options):
    measured = _measured(*options)
    flags = dict(zip(options[::2], options[1::2]))
    assert measured["channels_last"] == (flags.get("--channels_last") == "true")
    assert measured["torch_compile"] == (flags.get("--torch_compile") == "true")
    assert measured["examples_per_second"] > 0


def test_data_on_device_and_model_flops_utilisation_run_on_cpu():
    # The GPU path's code on a CPU: batches gathered from uint8 images held on the device, SimCLR views made there,
    # fused optimizers, and the FLOP count and matmul rate behind the MFU.
    options = [
        "--data_on_device",
        "true",
        "--max_train_samples",
        "64",
        "--channels_last",
        "true",
        "--fused_optimizers",
        "true",
        "--view_mode",
        "viewmaker+expert",
        "--expert_views",
        "simclr_image",
    ]
    measured = _measured(*options)
    assert measured["data_on_device"] is True and measured["examples_per_second"] > 0
    assert measured["flops_per_step"] > 0 and measured["matmul_tflops"] > 0 and measured["matmul_dtype"] == "float32"
    assert measured["achieved_tflops"] == pytest.approx(
        measured["flops_per_step"] / measured["step_seconds_median"] / 1e12
    )
    assert measured["mfu"] == pytest.approx(measured["achieved_tflops"] / measured["matmul_tflops"])
    assert measured["host_syncs_per_step"] is None  # counted on CUDA only


def test_the_gpu_script_runs_only_commands_that_parse(tmp_path, monkeypatch):
    # benchmarks/run_gpu.sh with stand-ins for python and nvidia-smi, so that the first session with a GPU does not
    # lose its minutes to a mistyped flag.
    calls = tmp_path / "calls.jsonl"
    (tmp_path / "python").write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\nprint('{{}}')\n"
    )
    (tmp_path / "nvidia-smi").write_text("#!/bin/sh\necho name\necho 'NVIDIA H100 80GB HBM3'\n")
    for stub in ("python", "nvidia-smi"):
        (tmp_path / stub).chmod(0o755)
    env = {
        **os.environ,
        "PYTHON": str(tmp_path / "python"),
        "RESULTS": str(tmp_path / "results.jsonl"),
        "PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}",
    }
    result = subprocess.run(
        ["bash", "benchmarks/run_gpu.sh"], env=env, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("name\nNVIDIA H100")
    commands = [json.loads(line) for line in calls.read_text().splitlines()]
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == len(commands)
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.syspath_prepend(str(REPO_ROOT / "training"))
    benchmark = importlib.import_module("benchmark")
    parsed = [benchmark.parse_args(command[1:]) for command in commands if command[0] == "training/benchmark.py"]
    assert all(bench.device == "cuda" for _, bench, _ in parsed)
    runs = [run.training for run, _, _ in parsed]
    assert any(
        run.per_device_train_batch_size == 256
        and run.data_on_device
        and run.mixed_precision == "bf16"
        and run.channels_last
        and run.torch_compile
        and pretraining.optimization.fused_optimizers
        for run, (pretraining, _, _) in zip(runs, parsed)
    )
    assert ["benchmarks/logmel_vs_librosa.py", "--clips", "64", "--repeats", "5", "--device", "cuda"] in commands


def test_a_second_size_is_timed_beside_the_runs_and_its_ratios_reported():
    # One run at batch 8, each step followed by one at batch 16 on 32x32 inputs: the compared FLOPs must follow the
    # work (both networks are convolutional: examples x pixels), and the ratios the medians.
    options = ["--compare_batch_size", "16", "--compare_image_size", "32", "--retain_freed_host_memory", "false"]
    measured = _measured(*options)
    compared = measured["compared"]
    assert compared["batch_size"] == 16 and compared["input_shape"] == [1, 32, 32]
    work = 2 * (32 / measured["input_shape"][1]) ** 2
    assert compared["flops_per_step"] / measured["flops_per_step"] == pytest.approx(work, rel=0.15)
    assert measured["compared_examples_per_second_ratio"] == pytest.approx(
        compared["examples_per_second"] / measured["examples_per_second"]
    )
    assert measured["compared_mfu_ratio"] == pytest.approx(compared["mfu"] / measured["mfu"])
    assert measured["retain_freed_host_memory"] is False
