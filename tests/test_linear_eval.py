"""training/linear_eval.py and hf_viewmaker.evaluation.linear_probe: linear evaluation of tiny pretrained runs (images,
speech on LibriSpeech-schema files and a dev-clean folder, Pamap2 in its archive layout)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image
from PIL import Image as PILImage
from safetensors.torch import load_file
from test_corruptions import make_fake_cifar10c
from test_pretrain import ENCODER_TINY
from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoModelForImageClassification

from hf_viewmaker import (
    ContrastiveResNetConfig,
    ContrastiveResNetForClassification,
    ContrastiveResNetModel,
    ViewmakerConfig,
    ViewmakerImageProcessor,
    ViewmakerModel,
)
from hf_viewmaker.data import FASHION_MNIST_SAMPLE_FILES, Pamap2Windows
from hf_viewmaker.evaluation.corruptions import evaluate_cifar10c
from hf_viewmaker.evaluation.linear_probe import (
    build_linear_probe,
    extract_features,
    milestone_epochs,
    resolve_subfolder,
    step_schedule,
)
from hf_viewmaker.hub import collect_run_files
from hf_viewmaker.processing import LogMelFeatureExtractor, SensorSpectrogramProcessor

from helpers import (
    TINY_MODEL,
    encode_audio,
    load_script,
    run_in_process,
    speech_clip,
    write_librispeech_parquet,
    write_pamap2_subject,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAINING = REPO_ROOT / "training"
CONFIGS = TRAINING / "configs"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
# The tiny pretraining run of tests/test_pretrain.py: 16x16 greyscale Fashion-MNIST, a 2-stage encoder.
PRETRAIN_TINY = [
    "--config",
    str(CONFIGS / "quickstart.yaml"),
    *TINY_MODEL,
    "--per_device_train_batch_size",
    "16",
    "--max_train_samples",
    "64",
    "--max_eval_samples",
    "32",
    "--knn_max_train_samples",
    "64",
    "--report_to",
    "none",
    "--max_steps",
    "2",
]
EVAL_TINY = [
    "--config",
    str(CONFIGS / "eval_quickstart.yaml"),
    "--max_train_samples",
    "64",
    "--max_eval_samples",
    "32",
    "--per_device_train_batch_size",
    "16",
    "--per_device_eval_batch_size",
    "16",
    "--report_to",
    "none",
]


pytestmark = pytest.mark.usefixtures("one_thread")


linear_eval = load_script(TRAINING / "linear_eval.py")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A pretraining run folder (encoder/ + viewmaker/) after 2 steps of the quickstart recipe, shrunk."""
    output_dir = tmp_path_factory.mktemp("pretrain_run")
    pretrain = load_script(TRAINING / "pretrain.py")
    run_in_process(pretrain.main, [*PRETRAIN_TINY, "--output_dir", str(output_dir)])
    assert (output_dir / "encoder" / "config.json").is_file() and (output_dir / "viewmaker" / "config.json").is_file()
    return output_dir


@pytest.fixture(scope="module")
def launched_eval(tiny_run, tmp_path_factory) -> Path:
    """`accelerate launch training/linear_eval.py` on the tiny run, with viewmaker views, for 5 epochs."""
    output_dir = tmp_path_factory.mktemp("linear_eval")
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_machines",
        "1",
        "--num_processes",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(TRAINING / "linear_eval.py"),
        "--model_name_or_path",
        str(tiny_run),
        *EVAL_TINY,
        "--num_train_epochs",
        "5",
        "--eval_every_epochs",
        "2",
        "--output_dir",
        str(output_dir),
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
    assert json.loads((launched_eval / "eval_args.json").read_text())["training"]["num_train_epochs"] == 5


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
    run_in_process(linear_eval.main, [*base, "--output_dir", str(tmp_path / "live")])
    run_in_process(linear_eval.main, [*base, "--cache_features", "true", "--output_dir", str(tmp_path / "cached")])
    live, cached = _results(tmp_path / "live"), _results(tmp_path / "cached")
    assert cached["cache_features"] and not live["cache_features"]
    for key in ("top1_accuracy", "top5_accuracy", "macro_f1", "eval_loss"):
        assert cached[key] == pytest.approx(live[key], abs=1e-6)
    assert [h["train_loss"] for h in cached["history"]] == pytest.approx([h["train_loss"] for h in live["history"]])
    heads = [load_file(tmp_path / run / "model.safetensors") for run in ("live", "cached")]
    torch.testing.assert_close(heads[0]["classifier.weight"], heads[1]["classifier.weight"], atol=1e-6, rtol=1e-5)


def test_knn_only_reports_knn_accuracy(tiny_run, tmp_path):
    run_in_process(
        linear_eval.main,
        [
            "--model_name_or_path",
            str(tiny_run),
            *EVAL_TINY,
            "--knn_only",
            "true",
            "--knn_k",
            "5",
            "--output_dir",
            str(tmp_path),
        ],
    )
    results = _results(tmp_path)
    assert 0.0 <= results["knn_accuracy"] <= 1.0
    assert (results["knn_k"], results["knn_features"], results["num_train_examples"]) == (5, "embeddings", 64)
    assert not (tmp_path / "model.safetensors").exists()


def test_an_encoder_folder_alone_needs_no_viewmaker_unless_asked(tiny_run, tmp_path):
    argv = ["--model_name_or_path", str(tiny_run / "encoder"), *EVAL_TINY, "--num_train_epochs", "1"]
    with pytest.raises(FileNotFoundError, match="viewmaker"):
        run_in_process(linear_eval.main, [*argv, "--output_dir", str(tmp_path)])
    run_in_process(
        linear_eval.main, [*argv, "--train_views", "none", "--features", "pooled", "--output_dir", str(tmp_path)]
    )
    results = _results(tmp_path)
    assert results["encoder"] == str(tiny_run / "encoder") and results["viewmaker"] is None
    assert results["feature_dim"] == 16


def test_a_published_repository_evaluates_as_its_run_folder(tiny_run, tmp_path):
    """The published layout (the encoder at the root, the viewmaker in viewmaker/, training_args.json beside them),
    as a downloaded snapshot: the same models, views and numbers as the run folder it was pushed from."""
    published = tmp_path / "published"
    for path_in_repo, local in collect_run_files(tiny_run).items():
        (published / path_in_repo).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, published / path_in_repo)
    assert (published / "config.json").is_file() and not (published / "encoder").exists()
    for source in (tiny_run, published):
        argv = ["--model_name_or_path", str(source), *EVAL_TINY, "--num_train_epochs", "1"]
        run_in_process(linear_eval.main, [*argv, "--output_dir", str(tmp_path / source.name)])
    from_run, from_repo = _results(tmp_path / tiny_run.name), _results(tmp_path / "published")
    assert from_repo["viewmaker"] == str(published / "viewmaker") and from_repo["encoder"] == str(published)
    for key in ("top1_accuracy", "macro_f1", "eval_loss", "feature_dim", "train_views"):
        assert from_repo[key] == from_run[key], key


def _rgb_run(root: Path) -> Path:
    """A freshly initialised RGB 32x32 run folder (encoder/ + viewmaker/ with processors)."""
    torch.manual_seed(0)
    encoder = ContrastiveResNetModel(
        ContrastiveResNetConfig(depths=[1, 1], hidden_sizes=[4, 8], stem_channels=4, embedding_dim=8, image_size=32)
    )
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
    run_in_process(
        linear_eval.main,
        [
            "--model_name_or_path",
            str(run),
            "--train_file",
            str(_rgb_parquet(tmp_path / "train.parquet", 24, 0)),
            "--validation_file",
            str(_rgb_parquet(tmp_path / "test.parquet", 12, 1)),
            "--image_column_name",
            "img",
            "--train_views",
            "expert",
            "--num_train_epochs",
            "2",
            "--per_device_train_batch_size",
            "8",
            "--report_to",
            "none",
            "--cifar10c_dir",
            str(cifar10c),
            "--cifar10c_images_per_severity",
            "4",
            "--output_dir",
            str(output_dir),
        ],
    )
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


def test_a_trained_probe_given_as_the_encoder_gets_a_fresh_head(launched_eval, caplog):
    """A probe folder (encoder + trained head) passed as --model_name_or_path: the new probe must not start from
    (and, with --num_train_epochs 0, report) the old head."""
    import logging

    old = ContrastiveResNetForClassification.from_pretrained(launched_eval).classifier.weight
    with caplog.at_level(logging.WARNING):
        probe = build_linear_probe(str(launched_eval), num_labels=old.shape[0], features="prepool")
    assert "holds a trained classifier head" in caplog.text
    assert not torch.equal(probe.classifier.weight, old)
    torch.testing.assert_close(probe.resnet.state_dict(), ContrastiveResNetForClassification.from_pretrained(
        launched_eval).resnet.state_dict())  # fmt: skip


def test_an_output_dir_that_cannot_be_written_or_holds_an_evaluation_is_refused_first(
    tiny_run, launched_eval, tmp_path
):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(PermissionError, match="a_file/out cannot be written to"):
        run_in_process(linear_eval.main, ["--model_name_or_path", str(tiny_run), *EVAL_TINY,
                                          "--output_dir", str(tmp_path / "a_file" / "out")])  # fmt: skip
    with pytest.raises(FileExistsError, match="eval_results.json"):
        run_in_process(linear_eval.main, ["--model_name_or_path", str(tiny_run), *EVAL_TINY,
                                          "--output_dir", str(launched_eval)])  # fmt: skip


def test_a_trained_probe_with_a_head_of_another_shape_gets_a_fresh_one(launched_eval):
    old = ContrastiveResNetForClassification.from_pretrained(launched_eval).classifier.weight
    probe = build_linear_probe(str(launched_eval), num_labels=old.shape[0] + 2, features="pooled")
    assert probe.classifier.weight.shape[0] == old.shape[0] + 2


def test_flag_checks_and_recipes(tmp_path):
    with pytest.raises(SystemExit):
        linear_eval.parse_args(["--model_name_or_path", "x", "--cache_features", "true"])  # viewmaker views
    with pytest.raises(SystemExit):
        linear_eval.parse_args(["--features", "pooled"])  # no model
    (tmp_path / "bad.yaml").write_text("learning_rate: 0.1\nlerning_rate: 0.2\n")
    with pytest.raises(SystemExit):
        linear_eval.parse_args(["--model_name_or_path", "x", "--config", str(tmp_path / "bad.yaml")])
    for bad in (
        ["--domain", "sensor", "--image_size", "32"],
        ["--transfer_dataset", "audio_mnist"],
        ["--domain", "audio", "--transfer_dataset", "fluent_speech_commands"],
        ["--label_column_name", "none"],
    ):
        with pytest.raises(SystemExit):
            linear_eval.parse_args(["--model_name_or_path", "x", *bad])
    # Every group's fields side by side (their names are distinct), as the flags name them.
    recipes = {
        p.stem: SimpleNamespace(
            **{
                name: value
                for group in linear_eval.parse_args(["--model_name_or_path", "x", "--config", str(p)])
                .to_dict()
                .values()
                for name, value in group.items()
            }
        )
        for p in CONFIGS.glob("eval_*.yaml")
    }
    assert set(recipes) == {
        "eval_quickstart",
        "eval_cifar10",
        "eval_pamap2",
        "eval_librispeech_speaker_id",
        "eval_fashion_mnist",
        "eval_asterisk",
        "eval_basic_motions",  # the small-scale comparison (docs/results.md)
        "eval_watch",  # its second round
        "eval_asterisk8",
        "eval_asterisk8_ktuberling",
    }
    cifar = recipes["eval_cifar10"]
    assert (cifar.features, cifar.learning_rate, cifar.momentum, cifar.weight_decay) == ("prepool", 0.01, 0.9, 0.0)
    assert (cifar.per_device_train_batch_size, cifar.num_train_epochs, cifar.lr_scheduler_type) == (128, 100, "step")
    assert cifar.lr_milestones == [0.6, 0.8] and cifar.lr_gamma == 0.1
    # docs/method.md §5: Pamap2 on the pooled vector with weight decay; 11 classes unless --num_labels 12 is given.
    pamap2 = recipes["eval_pamap2"]
    assert (pamap2.domain, pamap2.features, pamap2.weight_decay, pamap2.per_device_train_batch_size) == (
        "sensor",
        "pooled",
        1e-4,
        256,
    )
    assert (pamap2.lr_scheduler_type, pamap2.num_labels, pamap2.num_train_epochs) == ("constant", None, 100)
    assert (pamap2.learning_rate, pamap2.momentum, pamap2.validation_split) == (0.01, 0.9, "validation")
    # Audio: the pre-pool map, SGD 0.01 / 0.9, no weight decay, batch 256, 100 epochs, no schedule.
    speech = recipes["eval_librispeech_speaker_id"]
    assert (speech.domain, speech.transfer_dataset, speech.features) == ("audio", "librispeech_speaker_id", "prepool")
    assert (speech.learning_rate, speech.momentum, speech.weight_decay) == (0.01, 0.9, 0.0)
    assert (speech.per_device_train_batch_size, speech.num_train_epochs, speech.lr_scheduler_type) == (
        256,
        100,
        "constant",
    )


# ---------------------------------------------------------------------------------------------------- speech, sensors
def _encoder_map_size(run: Path, shape: tuple[int, ...]) -> tuple[int, int]:
    """The flattened pre-pool size and the pooled size of a run's encoder for inputs of `shape`."""
    encoder = ContrastiveResNetModel.from_pretrained(run / "encoder").eval()
    with torch.no_grad():
        out = encoder(torch.zeros(1, *shape))
    return out.last_hidden_state[0].numel(), out.pooler_output.shape[1]


@pytest.fixture(scope="module")
def speech_run(tmp_path_factory) -> Path:
    """A 2-step viewmaker run on LibriSpeech-schema parquet files (1x64x64 log-mels, VoxCeleb1 statistics so that the
    encoder's front end differs from the default one)."""
    root = tmp_path_factory.mktemp("speech")
    write_librispeech_parquet(root / "train.parquet", per_speaker=4)
    write_librispeech_parquet(root / "validation.parquet", speakers=(3, 19, 250), per_speaker=2, seed=40)
    run_in_process(
        load_script(TRAINING / "pretrain.py").main,
        [
            "--domain",
            "audio",
            "--train_file",
            str(root / "train.parquet"),
            "--validation_file",
            str(root / "validation.parquet"),
            "--label_column_name",
            "speaker_id",
            "--image_size",
            "64",
            "--num_channels",
            "1",
            "--encoder_preset",
            "resnet18_audio",
            "--clamp_views",
            "false",
            "--audio_normalization",
            "voxceleb1",
            "--output_dir",
            str(root / "run"),
            *ENCODER_TINY,
        ],
    )
    return root


def test_speech_linear_eval_on_librispeech_schema_files(speech_run, tmp_path):
    run, output_dir = speech_run / "run", tmp_path / "eval"
    run_in_process(
        linear_eval.main,
        [
            "--model_name_or_path",
            str(run),
            "--domain",
            "audio",
            "--train_file",
            str(speech_run / "train.parquet"),
            "--validation_file",
            str(speech_run / "validation.parquet"),
            "--label_column_name",
            "speaker_id",
            "--lr_scheduler_type",
            "constant",
            "--num_train_epochs",
            "2",
            "--per_device_train_batch_size",
            "4",
            "--per_device_eval_batch_size",
            "4",
            "--report_to",
            "none",
            "--output_dir",
            str(output_dir),
        ],
    )
    results = _results(output_dir)
    assert (results["domain"], results["train_views"]) == ("audio", "viewmaker")
    assert results["viewmaker"] == str(run / "viewmaker")
    assert results["dataset"] == str(speech_run / "train.parquet") and results["split"] == "validation"
    assert (results["num_train_examples"], results["num_eval_examples"], results["num_labels"]) == (12, 6, 3)
    # Pre-pool features of the 1x64x64 log-mel (16 channels x 8 x 8 for this 2-stage encoder; 512x2x2 = 2,048 for
    # the paper's ResNet-18, see test_paper_feature_sizes).
    assert results["input_shape"] == [1, 64, 64] and results["features"] == "prepool"
    assert results["feature_dim"] == _encoder_map_size(run, (1, 64, 64))[0] == 16 * 8 * 8
    # The encoder's own log-mel front end (its VoxCeleb1 statistics), saved beside the probe.
    assert results["audio_normalization"] == {"mean": -37.075, "std": 19.776}
    saved = AutoFeatureExtractor.from_pretrained(output_dir)
    assert isinstance(saved, LogMelFeatureExtractor)
    assert saved.to_dict() == LogMelFeatureExtractor.from_pretrained(run / "encoder").to_dict()
    # The saved probe and extractor reproduce the accuracy on the validation clips; the labels are the training
    # split's speaker map (sorted speaker ids).
    model = AutoModelForImageClassification.from_pretrained(output_dir).eval()
    assert [model.config.id2label[i] for i in range(3)] == ["3", "19", "250"]
    clips = write_librispeech_parquet(tmp_path / "again.parquet", speakers=(3, 19, 250), per_speaker=2, seed=40)
    with torch.no_grad():
        logits = model(saved(clips, sampling_rate=16000)["input_features"]).logits
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    assert (logits.argmax(1) == labels).float().mean().item() == pytest.approx(results["top1_accuracy"])
    # The idioms of every transformers user: `model(**processor(raw))`, and the audio-classification pipeline.
    with torch.no_grad():
        torch.testing.assert_close(model(**saved(clips, sampling_rate=16000)).logits, logits)
    from transformers import pipeline

    classify = pipeline("audio-classification", model=str(output_dir), top_k=1)
    predicted = [classify(np.asarray(clip, dtype=np.float32))[0]["label"] for clip in clips]
    assert predicted == [model.config.id2label[int(i)] for i in logits.argmax(1)]


def _write_dev_clean(root: Path, speakers=(84, 174, 251), per_speaker=5) -> Path:
    """LibriSpeech/dev-clean in the archive layout: <speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac."""
    for s, speaker in enumerate(speakers):
        chapter = root / "LibriSpeech" / "dev-clean" / str(speaker) / str(1000 + s)
        chapter.mkdir(parents=True)
        lines = []
        for u in range(per_speaker):
            key = f"{speaker}-{1000 + s}-{u:04d}"
            (chapter / f"{key}.flac").write_bytes(encode_audio(speech_clip(0.2 + 0.1 * u, 7 * s + u)))
            lines.append(f"{key} HELLO")
        (chapter / f"{speaker}-{1000 + s}.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def test_speech_transfer_recipe_with_expert_views_and_knn(speech_run, tmp_path):
    data_dir = _write_dev_clean(tmp_path / "data")
    base = [
        "--config",
        str(CONFIGS / "eval_librispeech_speaker_id.yaml"),
        "--model_name_or_path",
        str(speech_run / "run"),
        "--data_dir",
        str(data_dir),
        "--per_device_train_batch_size",
        "4",
        "--per_device_eval_batch_size",
        "8",
        "--report_to",
        "none",
    ]
    run_in_process(
        linear_eval.main,
        [
            *base,
            "--num_train_epochs",
            "2",
            "--eval_every_epochs",
            "1",
            "--train_views",
            "expert",
            "--expert_views",
            "waveform_crop_noise",
            "--output_dir",
            str(tmp_path / "probe"),
        ],
    )
    results = _results(tmp_path / "probe")
    assert (results["dataset"], results["train_split"], results["split"]) == ("librispeech_speaker_id", "train", "test")
    # Per speaker, int(0.8 * 5) = 4 training utterances and 1 test utterance.
    assert (results["num_train_examples"], results["num_eval_examples"], results["num_labels"]) == (12, 3, 3)
    assert results["train_views"] == "expert" and results["expert_views"] == "waveform_crop_noise"
    assert results["viewmaker"] is None and results["feature_dim"] == 16 * 8 * 8
    # A transfer set is normalised with its own statistics (docs/method.md §4.3), on the encoder's front end.
    assert results["audio_normalization"] == {"mean": -22.924, "std": 12.587}
    assert [h["epoch"] for h in results["history"] if "top1_accuracy" in h] == [1, 2]
    run_in_process(
        linear_eval.main, [*base, "--knn_only", "true", "--knn_k", "3", "--output_dir", str(tmp_path / "knn")]
    )
    knn = _results(tmp_path / "knn")
    assert 0.0 <= knn["knn_accuracy"] <= 1.0 and (knn["num_train_examples"], knn["num_eval_examples"]) == (12, 3)


@pytest.fixture(scope="module")
def pamap2_run(tmp_path_factory) -> Path:
    """A 2-step viewmaker run on Pamap2 files in the archive layout (two activities per subject)."""
    root = tmp_path_factory.mktemp("pamap2")
    protocol = root / "PAMAP2_Dataset" / "Protocol"
    protocol.mkdir(parents=True)
    for subject in range(101, 110):
        write_pamap2_subject(protocol / f"subject{subject}.dat", [(1, 1100), (0, 20), (4, 1100)], subject)
    run_in_process(
        load_script(TRAINING / "pretrain.py").main,
        [
            "--domain",
            "sensor",
            "--data_dir",
            str(root),
            "--num_channels",
            "52",
            "--image_size",
            "32",
            "--clamp_views",
            "false",
            "--max_train_samples",
            "8",
            "--max_eval_samples",
            "8",
            "--output_dir",
            str(root / "run"),
            *ENCODER_TINY,
        ],
    )
    return root


PAMAP2_TINY = [
    "--max_train_samples",
    "16",
    "--max_eval_samples",
    "8",
    "--per_device_train_batch_size",
    "8",
    "--per_device_eval_batch_size",
    "8",
    "--report_to",
    "none",
]


def test_pamap2_linear_eval_uses_the_pretraining_statistics(pamap2_run, tmp_path, monkeypatch):
    run, output_dir = pamap2_run / "run", tmp_path / "eval"

    def refit(*args, **kwargs):
        raise AssertionError("the evaluation refitted the sensor statistics")

    monkeypatch.setattr(SensorSpectrogramProcessor, "fit_statistics", refit)
    run_in_process(
        linear_eval.main,
        [
            "--config",
            str(CONFIGS / "eval_pamap2.yaml"),
            "--model_name_or_path",
            str(run),
            "--data_dir",
            str(pamap2_run),
            *PAMAP2_TINY,
            "--num_train_epochs",
            "2",
            "--output_dir",
            str(output_dir),
        ],
    )
    monkeypatch.undo()
    results = _results(output_dir)
    assert (results["domain"], results["dataset"], results["split"]) == ("sensor", "pamap2", "validation")
    assert results["train_subjects"] == [101, 102, 103, 104, 107, 108, 109] and results["eval_subjects"] == [105]
    assert (results["num_train_examples"], results["num_eval_examples"], results["num_labels"]) == (16, 8, 11)
    # The pooled vector (16 channels here; 512 for the paper's ResNet-18) of 52x32x32 spectrograms.
    assert results["features"] == "pooled" and results["input_shape"] == [52, 32, 32]
    assert results["feature_dim"] == _encoder_map_size(run, (52, 32, 32))[1] == 16
    assert [h["learning_rate"] for h in results["history"]] == pytest.approx([0.01, 0.01])
    model = AutoModelForImageClassification.from_pretrained(output_dir)
    assert model.config.id2label[0] == "lying" and model.config.num_labels == 11
    # The processor beside the probe is the pretraining one, statistics included, not one refitted on the windows
    # the evaluation drew.
    pretrained = SensorSpectrogramProcessor.from_pretrained(run / "encoder")
    saved = SensorSpectrogramProcessor.from_pretrained(output_dir)
    assert saved.to_dict() == pretrained.to_dict()
    refitted = SensorSpectrogramProcessor().fit_statistics(
        Pamap2Windows(pamap2_run, "train", seed=1337, examples_per_epoch=16)
    )
    assert not np.allclose(refitted.channel_means, saved.channel_means)


def test_pamap2_evaluation_windows_are_fixed_and_training_windows_are_redrawn(pamap2_run, tmp_path):
    # A learning rate of 0 keeps the head fixed: the evaluation loss must then repeat exactly, while the training
    # loss changes with each epoch's windows. The original's 12-output head with --num_labels 12.
    run_in_process(
        linear_eval.main,
        [
            "--config",
            str(CONFIGS / "eval_pamap2.yaml"),
            "--model_name_or_path",
            str(pamap2_run / "run"),
            "--data_dir",
            str(pamap2_run),
            *PAMAP2_TINY,
            "--num_train_epochs",
            "3",
            "--eval_every_epochs",
            "1",
            "--learning_rate",
            "0",
            "--train_views",
            "none",
            "--num_labels",
            "12",
            "--output_dir",
            str(tmp_path),
        ],
    )
    history = _results(tmp_path)["history"]
    assert len({h["eval_loss"] for h in history}) == 1
    assert len({h["train_loss"] for h in history}) == 3
    model = AutoModelForImageClassification.from_pretrained(tmp_path)
    assert model.config.num_labels == 12 and model.config.id2label[11] == "LABEL_11"


def test_a_processor_of_another_domain_is_refused(pamap2_run, tmp_path):
    with pytest.raises(ValueError, match="SensorSpectrogramProcessor"):
        run_in_process(
            linear_eval.main,
            [
                "--model_name_or_path",
                str(pamap2_run / "run"),
                "--domain",
                "audio",
                "--train_file",
                "unused.parquet",
                "--output_dir",
                str(tmp_path),
            ],
        )


def test_paper_feature_sizes(tmp_path):
    """docs/method.md §5: 512x2x2 = 2,048 pre-pool features for the 64x64 speech ResNet-18, 512 pooled for Pamap2."""
    sizes = {}
    for name, config in (
        ("audio", ContrastiveResNetConfig.resnet18_audio(num_channels=1)),
        ("sensor", ContrastiveResNetConfig.resnet18_cifar(num_channels=52, image_size=32)),
    ):
        ContrastiveResNetModel(config).save_pretrained(tmp_path / name)
    sizes["audio"] = build_linear_probe(str(tmp_path / "audio"), 40, "prepool", image_size=64).classifier.in_features
    sizes["sensor"] = build_linear_probe(str(tmp_path / "sensor"), 11, "pooled").classifier.in_features
    assert sizes == {"audio": 2048, "sensor": 512}


def test_progress_shows_epochs_steps_loss_and_accuracy_with_log_lines_apart(tiny_run, tmp_path):
    """The probe's bar counts every step of every epoch and ends with the epoch, the loss and the last top-1; the kNN
    passes have bars too; no log line is glued to a bar's line."""
    argv = ["--model_name_or_path", str(tiny_run), *EVAL_TINY, "--num_train_epochs", "2"]
    command = [sys.executable, str(TRAINING / "linear_eval.py"), *argv, "--output_dir", str(tmp_path / "probe")]
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    frames = [frame for line in result.stderr.split("\n") for frame in line.split("\r")]
    final = [frame for frame in frames if frame.startswith("linear probe: 100%")]
    assert final and "epoch=2/2" in final[-1] and "loss=" in final[-1] and "top-1=" in final[-1]
    done, total = re.search(r"\| (\d+)/(\d+) ", final[-1]).groups()
    assert done == total and int(total) % 2 == 0 and int(total) >= 2  # every step of both epochs
    for line in result.stderr.split("\n"):
        if " - INFO - " in line:
            assert "it/s" not in line and "%|" not in line, line  # a log line on a bar's line
    knn = [sys.executable, str(TRAINING / "linear_eval.py"), *argv, "--knn_only", "true", "--knn_k", "3"]
    result = subprocess.run([*knn, "--output_dir", str(tmp_path / "knn")], env=ENV, capture_output=True, text=True,
                            timeout=600, cwd=REPO_ROOT)  # fmt: skip
    assert result.returncode == 0 and "kNN bank" in result.stderr and "kNN queries" in result.stderr
