"""training/benchmark.py in its seconds-long smoke mode, so that it cannot rot."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--config", str(REPO_ROOT / "training" / "configs" / "quickstart.yaml"), "--steps", "2", "--warmup_steps", "1",
    "--per_device_train_batch_size", "8", "--image_size", "16", "--encoder_depths", "1", "1",
    "--encoder_hidden_sizes", "8", "16", "--encoder_stem_channels", "8", "--embedding_dim", "16",
    "--num_res_blocks", "1", "--device", "cpu",
]


@pytest.mark.parametrize("update", ["one_pass", "two_pass"])
def test_benchmark_prints_its_measurements_as_json(update):
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "training" / "benchmark.py"), *TINY, "--adversarial_update", update],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["adversarial_update"] == update and measured["batch_size"] == 8
    assert measured["device"] == "cpu" and measured["recipe"] == "quickstart"
    assert measured["examples_per_second"] > 0 and measured["step_seconds_median"] > 0
    assert measured["peak_memory_mb"] > 0


@pytest.mark.parametrize(
    "options",
    [["--channels_last", "true", "--fused_optimizers", "true"], ["--torch_compile", "true", "--torch_compile_backend", "aot_eager"]],
    ids=["channels_last_fused", "compiled"],
)
def test_gpu_path_options_run_on_cpu(options):
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "training" / "benchmark.py"), *TINY, *options],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    flags = dict(zip(options[::2], options[1::2]))
    assert measured["channels_last"] == (flags.get("--channels_last") == "true")
    assert measured["torch_compile"] == (flags.get("--torch_compile") == "true")
    assert measured["examples_per_second"] > 0
