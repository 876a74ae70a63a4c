"""training/linear_eval.py and hf_viewmaker.evaluation.linear_probe: linear evaluation of a tiny pretrained run."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image
from PIL import Image as PILImage
from safetensors.torch import load_file
from transformers import AutoImageProcessor, AutoModelForImageClassification

from hf_viewmaker import (
    ContrastiveResNetConfig,
    ContrastiveResNetForClassification,
    ContrastiveResNetModel,
    ViewmakerConfig,
    ViewmakerImageProcessor,
    ViewmakerModel,
)
from hf_viewmaker.data import FASHION_MNIST_SAMPLE_FILES
from hf_viewmaker.evaluation.corruptions import evaluate_cifar10c
from hf_viewmaker.evaluation.linear_probe import (
    build_linear_probe,
    extract_features,
    milestone_epochs,
    resolve_subfolder,
    step_schedule,
)

from test_corruptions import make_fake_cifar10c

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAINING = REPO_ROOT / "training"
CONFIGS = TRAINING / "configs"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
# The tiny pretraining run of tests/test_pretrain.py: 16x16 greyscale Fashion-MNIST, a 2-stage encoder.
PRETRAIN_TINY = [
    "--config", str(CONFIGS / "quickstart.yaml"), "--image_size", "16", "--encoder_depths", "1", "1",
    "--encoder_hidden_sizes", "8", "16", "--encoder_stem_channels", "8", "--embedding_dim", "16", "--num_res_blocks",
    "1", "--per_device_train_batch_size", "16", "--max_train_samples", "64", "--max_eval_samples", "32",
    "--knn_max_train_samples", "64", "--report_to", "none", "--max_steps", "2",
]
EVAL_TINY = [
    "--config", str(CONFIGS / "eval_quickstart.yaml"), "--max_train_samples", "64", "--max_eval_samples", "32",
    "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "16", "--report_to", "none",
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convolutions run fastest on one thread, and many times slower on two when the cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_script", TRAINING / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


linear_eval = _load_script("linear_eval")


def _in_process(main, argv):
    """Run a script's `main` in this process, with a fresh Accelerate state before and after."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        main(argv)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A pretraining run folder (encoder/ + viewmaker/) after 2 steps of the quickstart recipe, shrunk."""
    output_dir = tmp_path_factory.mktemp("pretrain_run")
    pretrain = _load_script("pretrain")
    _in_process(pretrain.main, [*PRETRAIN_TINY, "--output_dir", str(output_dir)])
    assert (output_dir / "encoder" / "config.json").is_file() and (output_dir / "viewmaker" / "config.json").is_file()
    return output_dir


@pytest.fixture(scope="module")
def launched_eval(tiny_run, tmp_path_factory) -> Path:
    """`accelerate launch training/linear_eval.py` on the tiny run, with viewmaker views, for 5 epochs."""
    output_dir = tmp_path_factory.mktemp("linear_eval")
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--num_processes", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", str(TRAINING / "linear_eval.py"),
        "--model_name_or_path", str(tiny_run), *EVAL_TINY, "--num_train_epochs", "5", "--eval_every_epochs", "2",
        "--output_dir", str(output_dir),
    ]
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    return output_dir


def _results(output_dir: Path) -> dict:
    return json.loads((output_dir / "eval_results.json").read_text())


def test_launch_writes_results_with_their_provenance(launched_eval, tiny_run):
    results = _results(launched_eval)
    assert results["model_name_or_path"] == str(tiny_run)
    assert results["encoder"] == str(tiny_run / "encoder") and results["viewmaker"] == str(tiny_run / "viewmaker")
    assert results["dataset"] == "fashion_mnist_sample" and results["split"] == "test"
    assert (results["num_train_examples"], results["num_eval_examples"], results["epochs"]) == (64, 32, 5)
    assert results["features"] == "prepool" and results["train_views"] == "viewmaker"
    assert results["feature_dim"] == 16 * 8 * 8  # 16 channels, 16x16 inputs halved once
    for key in ("top1_accuracy", "top5_accuracy", "macro_f1"):
        assert 0.0 <= results[key] <= 1.0
    assert results["top5_accuracy"] >= results["top1_accuracy"]
    history = results["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert ["top1_accuracy" in h for h in history] == [False, True, False, True, True]
    assert history[-1]["top1_accuracy"] == results["top1_accuracy"]
    # The MoCo step schedule: x0.1 from epoch int(0.6 * 5) = 3 and again from int(0.8 * 5) = 4 (0-based).
    assert [h["learning_rate"] for h in history] == pytest.approx([0.01, 0.01, 0.01, 0.001, 0.0001])
    assert json.loads((launched_eval / "eval_args.json").read_text())["num_train_epochs"] == 5


def test_the_encoder_stays_frozen(launched_eval, tiny_run):
    pretrained = load_file(tiny_run / "encoder" / "model.safetensors")
    probe = load_file(launched_eval / "model.safetensors")
    assert set(probe) == {f"resnet.{k}" for k in pretrained} | {"classifier.weight", "classifier.bias"}
    # Weights and BatchNorm statistics alike: the encoder ran in eval mode and received no updates.
    changed = [k for k, v in pretrained.items() if not torch.equal(probe[f"resnet.{k}"], v)]
    assert changed == []


def test_the_saved_probe_loads_with_auto_classes_and_reproduces_the_accuracy(launched_eval):
    model = AutoModelForImageClassification.from_pretrained(launched_eval)
    processor = AutoImageProcessor.from_pretrained(launched_eval)
    assert isinstance(model, ContrastiveResNetForClassification) and processor.do_normalize
    assert model.config.classifier_features == "prepool" and model.config.num_labels == 10
    assert model.config.id2label[0] == "T-shirt/top"
    test = Dataset.from_parquet(FASHION_MNIST_SAMPLE_FILES["test"]).select(range(32))
    inputs = processor(list(test["image"]), return_tensors="pt")
    with torch.no_grad():
        predictions = model.eval()(**inputs).logits.argmax(dim=1)
    accuracy = (predictions == torch.tensor(test["label"])).float().mean().item()
    assert accuracy == pytest.approx(_results(launched_eval)["top1_accuracy"])


def test_step_schedule_multiplies_the_lr_by_a_tenth_at_60_and_80_percent():
    head = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.01, momentum=0.9)
    scheduler = step_schedule(optimizer, num_epochs=100)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert milestone_epochs(100) == [60, 80]
    assert lrs[:60] == pytest.approx([0.01] * 60)
    assert lrs[60:80] == pytest.approx([0.001] * 20)
    assert lrs[80:] == pytest.approx([0.0001] * 20)
    assert milestone_epochs(10) == [6, 8] and milestone_epochs(7) == [4, 5]
    with pytest.raises(ValueError, match="fractions"):
        step_schedule(optimizer, 10, milestones=(60, 80))


def test_build_linear_probe_keeps_the_pretrained_encoder_frozen(tiny_run):
    encoder = ContrastiveResNetModel.from_pretrained(tiny_run, subfolder="encoder").eval()
    probe = build_linear_probe(str(tiny_run), num_labels=3, features="pooled", subfolder="encoder")
    assert not probe.training and not any(p.requires_grad for p in probe.resnet.parameters())
    assert all(p.requires_grad for p in probe.classifier.parameters()) and probe.classifier.in_features == 16
    pixels = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(
        extract_features(probe.resnet, pixels, "prepool"), encoder(pixels).last_hidden_state.flatten(1)
    )
    assert resolve_subfolder(str(tiny_run), "encoder") == "encoder"
    assert resolve_subfolder(str(tiny_run / "encoder"), "encoder") == ""
    assert resolve_subfolder(str(tiny_run), "nothing", fallback_to_root=True) is None


def test_cached_features_train_the_same_head(tiny_run, tmp_path):
    base = ["--model_name_or_path", str(tiny_run), *EVAL_TINY, "--num_train_epochs", "3", "--train_views", "none"]
    _in_process(linear_eval.main, [*base, "--output_dir", str(tmp_path / "live")])
    _in_process(linear_eval.main, [*base, "--cache_features", "true", "--output_dir", str(tmp_path / "cached")])
    live, cached = _results(tmp_path / "live"), _results(tmp_path / "cached")
    assert cached["cache_features"] and not live["cache_features"]
    for key in ("top1_accuracy", "top5_accuracy", "macro_f1", "eval_loss"):
        assert cached[key] == pytest.approx(live[key], abs=1e-6)
    assert [h["train_loss"] for h in cached["history"]] == pytest.approx([h["train_loss"] for h in live["history"]])
    heads = [load_file(tmp_path / run / "model.safetensors") for run in ("live", "cached")]
    torch.testing.assert_close(heads[0]["classifier.weight"], heads[1]["classifier.weight"], atol=1e-6, rtol=1e-5)


def test_knn_only_reports_knn_accuracy(tiny_run, tmp_path):
    _in_process(linear_eval.main, [
        "--model_name_or_path", str(tiny_run), *EVAL_TINY, "--knn_only", "true", "--knn_k", "5",
        "--output_dir", str(tmp_path),
    ])
    results = _results(tmp_path)
    assert 0.0 <= results["knn_accuracy"] <= 1.0
    assert (results["knn_k"], results["knn_features"], results["num_train_examples"]) == (5, "embeddings", 64)
    assert not (tmp_path / "model.safetensors").exists()


def test_an_encoder_folder_alone_needs_no_viewmaker_unless_asked(tiny_run, tmp_path):
    argv = ["--model_name_or_path", str(tiny_run / "encoder"), *EVAL_TINY, "--num_train_epochs", "1"]
    with pytest.raises(FileNotFoundError, match="viewmaker"):
        _in_process(linear_eval.main, [*argv, "--output_dir", str(tmp_path)])
    _in_process(
        linear_eval.main, [*argv, "--train_views", "none", "--features", "pooled", "--output_dir", str(tmp_path)]
    )
    results = _results(tmp_path)
    assert results["encoder"] == str(tiny_run / "encoder") and results["viewmaker"] is None
    assert results["feature_dim"] == 16


def _rgb_run(root: Path) -> Path:
    """A freshly initialised RGB 32x32 run folder (encoder/ + viewmaker/ with processors)."""
    torch.manual_seed(0)
    encoder = ContrastiveResNetModel(ContrastiveResNetConfig(
        depths=[1, 1], hidden_sizes=[4, 8], stem_channels=4, embedding_dim=8, image_size=32
    ))
    encoder.save_pretrained(root / "encoder")
    ViewmakerImageProcessor(num_channels=3, do_normalize=True).save_pretrained(root / "encoder")
    ViewmakerModel(ViewmakerConfig(num_channels=3, num_res_blocks=1)).save_pretrained(root / "viewmaker")
    return root


def _rgb_parquet(path: Path, count: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    images = [PILImage.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(count)]
    features = Features({"img": Image(), "label": ClassLabel(names=[f"class_{i}" for i in range(10)])})
    Dataset.from_dict({"img": images, "label": rng.integers(0, 10, count).tolist()}, features=features).to_parquet(path)
    return path


def test_cifar10c_results_are_added_after_training(tmp_path):
    run = _rgb_run(tmp_path / "run")
    cifar10c = tmp_path / "CIFAR-10-C"
    make_fake_cifar10c(cifar10c, images_per_severity=4)
    output_dir = tmp_path / "eval"
    _in_process(linear_eval.main, [
        "--model_name_or_path", str(run), "--train_file", str(_rgb_parquet(tmp_path / "train.parquet", 24, 0)),
        "--validation_file", str(_rgb_parquet(tmp_path / "test.parquet", 12, 1)), "--image_column_name", "img",
        "--train_views", "expert", "--num_train_epochs", "2", "--per_device_train_batch_size", "8",
        "--report_to", "none", "--cifar10c_dir", str(cifar10c), "--cifar10c_images_per_severity", "4",
        "--output_dir", str(output_dir),
    ])
    results = _results(output_dir)
    assert results["train_views"] == "expert" and results["dataset"] == str(tmp_path / "train.parquet")
    assert results["num_train_examples"] == 24 and results["split"] == "validation"
    corrupted = results["cifar10c"]
    assert len(corrupted["per_corruption"]) == 15 and corrupted["images_per_severity"] == 4
    assert 0.0 <= corrupted["mean_accuracy"] <= 1.0
    # The saved probe, loaded through the Auto classes, scores the same on the corrupted images.
    model = AutoModelForImageClassification.from_pretrained(output_dir).eval()
    processor = AutoImageProcessor.from_pretrained(output_dir)
    again = evaluate_cifar10c(model, cifar10c, processor.image_mean, processor.image_std, images_per_severity=4)
    assert again["per_severity"] == corrupted["per_severity"]


def test_flag_checks_and_recipes(tmp_path):
    with pytest.raises(SystemExit):
        linear_eval.parse_args(["--model_name_or_path", "x", "--cache_features", "true"])  # viewmaker views
    with pytest.raises(SystemExit):
        linear_eval.parse_args(["--features", "pooled"])  # no model
    (tmp_path / "bad.yaml").write_text("learning_rate: 0.1\nlerning_rate: 0.2\n")
    with pytest.raises(SystemExit):
        linear_eval.parse_args(["--model_name_or_path", "x", "--config", str(tmp_path / "bad.yaml")])
    recipes = {p.stem: linear_eval.parse_args(["--model_name_or_path", "x", "--config", str(p)])
               for p in CONFIGS.glob("eval_*.yaml")}
    assert set(recipes) == {"eval_quickstart", "eval_cifar10", "eval_pamap2"}
    cifar = recipes["eval_cifar10"]
    assert (cifar.features, cifar.learning_rate, cifar.momentum, cifar.weight_decay) == ("prepool", 0.01, 0.9, 0.0)
    assert (cifar.per_device_train_batch_size, cifar.num_train_epochs, cifar.lr_scheduler_type) == (128, 100, "step")
    assert cifar.lr_milestones == [0.6, 0.8] and cifar.lr_gamma == 0.1
    pamap2 = recipes["eval_pamap2"]
    assert (pamap2.features, pamap2.weight_decay, pamap2.per_device_train_batch_size) == ("pooled", 1e-4, 256)
    assert (pamap2.lr_scheduler_type, pamap2.num_labels) == ("constant", 12)
    with pytest.raises(NotImplementedError, match="sensor"):
        _in_process(linear_eval.main, ["--model_name_or_path", "x", "--config", str(CONFIGS / "eval_pamap2.yaml")])
