"""training/pretrain.py end to end: real runs of the script, with Accelerate, on the packaged Fashion-MNIST sample."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from accelerate.utils import set_seed
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoModel

from hf_viewmaker import ContrastiveResNetModel, ViewmakerForContrastivePretraining, ViewmakerModel
from hf_viewmaker.adversarial import AdversarialStep, build_pretraining_config
from hf_viewmaker.data import decode_audio
from hf_viewmaker.data.device_images import DeviceImageDataset
from hf_viewmaker.processing import LogMelFeatureExtractor, SensorSpectrogramProcessor

from helpers import (
    TINY_ENCODERS,
    TINY_MODEL,
    load_script,
    run_python,
    write_image_folder,
    write_librispeech_parquet,
    write_pamap2_subject,
    write_ts_file,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "training" / "pretrain.py"
CONFIGS = REPO_ROOT / "training" / "configs"
QUICKSTART = CONFIGS / "quickstart.yaml"
# The quickstart recipe, shrunk so a step takes a few milliseconds.
TINY = [
    "--config",
    str(QUICKSTART),
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
    "--logging_steps",
    "2",
]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


pretrain = load_script(SCRIPT)


def _launch(output_dir: Path, *args: str, processes: int = 1) -> list[str]:
    launcher = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    launcher += ["--multi_gpu", "--num_processes", str(processes)] if processes > 1 else ["--num_processes", "1"]
    return launcher + [str(SCRIPT), *TINY, "--output_dir", str(output_dir), *args]


def _run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return {
        f"{part}.{k}": v
        for part in ("viewmaker", "encoder")
        for k, v in load_file(output_dir / part / "model.safetensors").items()
    }


def test_quickstart_run_saves_loadable_models_and_views(tmp_path):
    _run(_launch(tmp_path, "--max_steps", "3"))
    viewmaker = AutoModel.from_pretrained(tmp_path / "viewmaker")
    encoder = AutoModel.from_pretrained(tmp_path / "encoder")
    assert isinstance(viewmaker, ViewmakerModel) and isinstance(encoder, ContrastiveResNetModel)
    # The viewmaker works on [0, 1] pixels, the encoder on normalised ones (docs/method.md §4.1).
    assert not AutoImageProcessor.from_pretrained(tmp_path / "viewmaker").do_normalize
    encoder_processor = AutoImageProcessor.from_pretrained(tmp_path / "encoder")
    assert encoder_processor.do_normalize and list(encoder_processor.image_mean) == [0.286]
    assert (tmp_path / "views.png").stat().st_size > 0
    results = json.loads((tmp_path / "train_results.json").read_text())
    assert results["completed_steps"] == 3 and 0.0 <= results["knn_accuracy"] <= 1.0
    # The label-free monitor: the effective rank of the encoder's 16-d pooled features of the 32 validation images.
    assert results["rankme_max"] == 16 and 1.0 <= results["rankme"] <= 16
    assert json.loads((tmp_path / "training_args.json").read_text())["training"]["max_steps"] == 3
    card = ModelCard.load(tmp_path / "README.md")
    assert {"viewmaker", "self-supervised", "contrastive-learning", "image"} <= set(card.data.tags)
    knn, rankme = card.data.eval_results
    assert knn.metric_value == round(results["knn_accuracy"], 4)
    assert (rankme.metric_type, rankme.metric_value) == ("rankme", round(results["rankme"], 4))
    assert "![views](views.png)" in card.text and "zalando-datasets/fashion_mnist" in card.data.datasets
    initial = ViewmakerModel(viewmaker.config)
    assert any(not torch.equal(a, b) for a, b in zip(viewmaker.state_dict().values(), initial.state_dict().values()))


def test_two_processes_asked_without_multi_gpu_is_an_error_not_one_silent_process(tmp_path):
    command = _launch(tmp_path / "run", "--max_steps", "1")
    command[command.index("--num_processes") + 1] = "2"  # as a user would type it, forgetting --multi_gpu
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert result.returncode != 0 and "--num_processes 2` started one process" in result.stderr
    assert not (tmp_path / "run").exists()


def test_resume_after_sigkill_ends_with_the_same_weights(tmp_path):
    # 4 steps per epoch, so the run crosses epoch boundaries; a checkpoint after every step.
    args = ["--max_steps", "12", "--checkpointing_steps", "1", "--checkpoints_total_limit", "2"]
    command = [sys.executable, str(SCRIPT), *TINY]
    _run(command + ["--output_dir", str(tmp_path / "uninterrupted"), *args])

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        command + ["--output_dir", str(killed), *args],
        env=ENV,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not (killed / "checkpoints" / "step_5").exists():
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "encoder").exists(), "the run finished before the kill: nothing was tested"

    _run(command + ["--output_dir", str(killed), *args, "--resume_from_checkpoint", "latest"])
    # The resumed run's results hold the whole loss history, from before the kill too, as the uninterrupted one's.
    histories = [
        json.loads((folder / "train_results.json").read_text())["encoder_loss_history"]
        for folder in (tmp_path / "uninterrupted", killed)
    ]
    assert histories[0] == histories[1] and [step for step, _ in histories[0]] == [2, 4, 6, 8, 10, 12]
    expected, resumed = _weights(tmp_path / "uninterrupted"), _weights(killed)
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name


ACCELERATE_CONFIGS = REPO_ROOT / "training" / "accelerate_configs"


def _launch_with(config_file: Path, output_dir: Path, *args: str, launcher_args: tuple[str, ...] = ()) -> list[str]:
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file), *launcher_args]
    return launcher + [str(SCRIPT), *TINY, "--output_dir", str(output_dir), *args]


def test_two_processes_stay_identical_and_match_one_process_with_the_doubled_batch(tmp_path):
    args = ["--max_steps", "1", "--logging_steps", "1"]
    # Two CPU processes, as training/accelerate_configs/cpu_two_processes.yaml launches them.
    config = ACCELERATE_CONFIGS / "cpu_two_processes.yaml"
    _run(_launch_with(config, tmp_path / "two", *args, "--per_device_train_batch_size", "8"))
    _run(_launch(tmp_path / "one", *args, "--per_device_train_batch_size", "16"))
    two = json.loads((tmp_path / "two" / "train_results.json").read_text())
    one = json.loads((tmp_path / "one" / "train_results.json").read_text())
    assert two["num_processes"] == 2
    assert len(set(two["replica_parameter_checksums"])) == 1, "DDP replicas must stay bitwise identical"

    # Both runs start from the same weights and take one step on the same 16 examples. They still differ in the
    # encoder's BatchNorm statistics (computed per process) and in the viewmaker's noise (drawn per process), so
    # they agree only approximately: the loss of the global batch within 5%, and the encoder's update in direction
    # (cosine > 0.9) and size (10%). (The viewmaker's first Adam step is sign-like, so its direction follows the
    # noise and is not compared.) The exact cross-process gradient algebra is tested in test_objectives_distributed.
    (loss_one,), (loss_two,) = (
        [loss for _, loss in one["encoder_loss_history"]],
        [loss for _, loss in two["encoder_loss_history"]],
    )
    assert abs(loss_one - loss_two) < 0.05 * loss_one, (loss_one, loss_two)
    parsed = pretrain.parse_args([*TINY, *args, "--per_device_train_batch_size", "16"])
    set_seed(parsed.training.seed)
    init = dict(ViewmakerForContrastivePretraining(_model_config(parsed, 64)).encoder.named_parameters())
    one_weights, two_weights = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    update_one = torch.cat([(one_weights[f"encoder.{k}"] - v.detach()).flatten() for k, v in init.items()])
    update_two = torch.cat([(two_weights[f"encoder.{k}"] - v.detach()).flatten() for k, v in init.items()])
    assert torch.nn.functional.cosine_similarity(update_one, update_two, dim=0) > 0.9
    assert abs(update_one.norm() - update_two.norm()) < 0.1 * update_one.norm()


def test_two_machines_over_loopback_train_as_two_processes_of_one_machine(tmp_path):
    """`--num_machines 2`: one process per "machine", both on this one, meeting at 127.0.0.1 (gloo). They write one
    run (the first machine saves it) with the weights of the same two processes launched on one machine."""
    import socket

    args = ["--max_steps", "1", "--logging_steps", "1", "--per_device_train_batch_size", "8"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2"]
    launcher += ["--num_processes", "2", "--main_process_ip", "127.0.0.1", "--main_process_port", port]
    launcher += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    script = [str(SCRIPT), *TINY, "--output_dir", str(tmp_path / "machines"), *args]
    machines = [
        subprocess.Popen(
            [*launcher, "--machine_rank", str(rank), *script],
            env=ENV,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    for machine in machines:
        _, stderr = machine.communicate(timeout=600)
        assert machine.returncode == 0, stderr[-4000:]
    _run(_launch_with(ACCELERATE_CONFIGS / "cpu_two_processes.yaml", tmp_path / "one_machine", *args))
    results = json.loads((tmp_path / "machines" / "train_results.json").read_text())
    assert results["num_processes"] == 2 and len(set(results["replica_parameter_checksums"])) == 1
    one_machine, two_machines = _weights(tmp_path / "one_machine"), _weights(tmp_path / "machines")
    for name, value in one_machine.items():
        assert torch.equal(value, two_machines[name]), name


def test_the_shipped_accelerate_configs_parse():
    from accelerate.commands.config.config_args import load_config_from_file

    shapes = {
        path.stem: (load_config_from_file(str(path)).num_machines, load_config_from_file(str(path)).num_processes)
        for path in ACCELERATE_CONFIGS.glob("*.yaml")
    }
    assert shapes == {
        "one_gpu_bf16": (1, 1),
        "eight_gpus_bf16": (1, 8),
        "two_machines_eight_gpus": (2, 16),
        "cpu_two_processes": (1, 2),
    }


def _model_config(run, num_examples):
    inputs = run.inputs
    return build_pretraining_config(
        run.model, run.objective, run.views, inputs.num_channels, inputs.image_size, num_examples
    )


PRETRAINING_RECIPES = sorted(p for p in CONFIGS.glob("*.yaml") if not p.stem.startswith("eval_"))


@pytest.mark.parametrize("recipe", PRETRAINING_RECIPES, ids=lambda p: p.stem)
def test_every_recipe_parses_and_builds_its_model(recipe):
    run = pretrain.parse_args(["--config", str(recipe)])
    config = _model_config(run, num_examples=1000)
    inputs, model, optimization = run.inputs, run.model, run.optimization
    assert config.encoder_config.num_channels == config.viewmaker_config.num_channels == inputs.num_channels
    if recipe.stem in ("quickstart", "fashion_mnist", "asterisk", "asterisk8", "basic_motions", "watch"):  # CPU-sized
        return
    # docs/method.md §6: every paper configuration.
    assert (optimization.learning_rate, optimization.momentum, optimization.weight_decay) == (0.03, 0.9, 1e-4)
    assert (optimization.viewmaker_learning_rate, run.objective.temperature, run.training.num_train_epochs) == (
        1e-3,
        0.07,
        200,
    )
    expected = {
        "cifar10": (3, 32, 256, "resnet18_cifar"),
        "librispeech100": (1, 64, 128, "resnet18_audio"),
        "librispeech960": (1, 112, 128, "resnet50_audio"),
        "pamap2": (52, 32, 128, "resnet18_cifar"),
    }[recipe.stem.split("_")[0]]
    shape = (inputs.num_channels, inputs.image_size, run.training.per_device_train_batch_size, model.encoder_preset)
    assert shape == expected
    assert config.encoder_config.feature_map_size == {32: (4, 4), 64: (2, 2), 112: (4, 4)}[inputs.image_size]
    if run.views.uses_viewmaker:
        assert model.distortion_budget in (0.05, 0.1) and model.num_res_blocks == 3
    if "instdisc" in recipe.stem:
        assert (config.objective, config.num_negatives, config.bank_momentum) == ("instdisc", 4096, 0.5)


def test_unknown_recipe_keys_are_named(tmp_path):
    (tmp_path / "bad.yaml").write_text("learning_rate: 0.1\nlerning_rate: 0.2\n")
    with pytest.raises(SystemExit):
        pretrain.parse_args(["--config", str(tmp_path / "bad.yaml")])


@pytest.fixture
def in_process(monkeypatch):
    """Run the script's `main` in this process, with a fresh Accelerate state before and after."""
    from accelerate.state import AcceleratorState

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    AcceleratorState._reset_state(reset_partial_state=True)
    yield lambda argv: pretrain.main(argv)
    AcceleratorState._reset_state(reset_partial_state=True)


def _poison_losses(monkeypatch, calls_to_poison):
    original = ViewmakerForContrastivePretraining.forward
    calls = {"n": 0}

    def forward(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls_to_poison(calls["n"]):
            out.loss = out.loss * float("nan")
            out.encoder_loss = out.loss.detach()
        return out

    monkeypatch.setattr(ViewmakerForContrastivePretraining, "forward", forward)


@pytest.mark.parametrize("fused", ["false", "true"], ids=["checked_on_host", "skipped_on_device"])
def test_a_nonfinite_step_is_skipped_and_training_goes_on(tmp_path, monkeypatch, in_process, caplog, fused):
    _poison_losses(monkeypatch, lambda call: call == 2)
    in_process([*TINY, "--output_dir", str(tmp_path), "--max_steps", "4", "--fused_optimizers", fused])
    assert "non-finite loss at step 1: step skipped" in caplog.text
    weights = _weights(tmp_path)
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert json.loads((tmp_path / "train_results.json").read_text())["completed_steps"] == 4


def test_repeated_nonfinite_steps_stop_the_run_without_writing_weights(tmp_path, monkeypatch, in_process):
    _poison_losses(monkeypatch, lambda call: call >= 2)
    with pytest.raises(RuntimeError, match="3 non-finite steps in a row"):
        in_process([*TINY, "--output_dir", str(tmp_path), "--max_steps", "8", "--max_nonfinite_steps", "3"])
    assert not (tmp_path / "encoder").exists() and not (tmp_path / "viewmaker").exists()


def test_bf16_mixed_precision_run(tmp_path, in_process):
    in_process([*TINY, "--output_dir", str(tmp_path), "--max_steps", "2", "--mixed_precision", "bf16"])
    results = json.loads((tmp_path / "train_results.json").read_text())
    assert all(math.isfinite(loss) for _, loss in results["encoder_loss_history"])
    # Saved weights stay float32: autocast computes in bf16 but the parameters are not converted.
    assert all(w.dtype == torch.float32 for k, w in _weights(tmp_path).items() if w.is_floating_point())


ENCODER_TINY = [
    *TINY_ENCODERS,
    "--report_to",
    "none",
    "--knn_k",
    "3",
    "--per_device_train_batch_size",
    "4",
    "--max_steps",
    "2",
    "--logging_steps",
    "1",
]


@pytest.mark.parametrize(
    "views",
    [
        [],
        ["--view_mode", "expert", "--expert_views", "waveform_crop_noise"],
        ["--view_mode", "expert", "--expert_views", "spectral_masking", "--spectral_noise_std", "0.25"],
    ],
    ids=["viewmaker", "waveform", "spectral"],
)
def test_speech_pretraining_on_librispeech_schema_files(tmp_path, in_process, views):
    # Two broken FLAC files among the 9 training clips: replaced, counted, never NaN in a batch.
    write_librispeech_parquet(tmp_path / "train.parquet", corrupt=(2, 5))
    write_librispeech_parquet(tmp_path / "validation.parquet", speakers=(3, 19), per_speaker=2, seed=40)
    out = tmp_path / "run"
    in_process(
        [
            "--domain",
            "audio",
            "--train_file",
            str(tmp_path / "train.parquet"),
            "--validation_file",
            str(tmp_path / "validation.parquet"),
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
            "--output_dir",
            str(out),
            "--skip_bad_examples",
            "true",
            *ENCODER_TINY,
            *views,
        ]
    )
    results = json.loads((out / "train_results.json").read_text())
    assert results["completed_steps"] == 2 and all(math.isfinite(loss) for _, loss in results["encoder_loss_history"])
    assert results["skipped_examples"] >= 1
    # The log-mel front end is saved with the models, so they are used on the same features.
    extractor = AutoFeatureExtractor.from_pretrained(out / "encoder")
    assert isinstance(extractor, LogMelFeatureExtractor) and extractor.hop_length == 2360
    assert (out / "viewmaker").is_dir() == (not views)


@pytest.mark.parametrize(
    "views",
    [
        [],
        [
            "--view_mode",
            "expert",
            "--expert_views",
            "spectral_masking",
            "--max_freq_mask",
            "20",
            "--max_time_mask",
            "20",
        ],
    ],
    ids=["viewmaker", "masking"],
)
def test_sensor_pretraining_on_pamap2_archive_layout(tmp_path, in_process, views):
    protocol = tmp_path / "PAMAP2_Dataset" / "Protocol"
    protocol.mkdir(parents=True)
    for subject in range(101, 110):
        write_pamap2_subject(protocol / f"subject{subject}.dat", [(1, 1100), (0, 20), (4, 1100)], subject)
    out = tmp_path / "run"
    in_process(
        [
            "--domain",
            "sensor",
            "--data_dir",
            str(tmp_path),
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
            str(out),
            *ENCODER_TINY,
            *views,
        ]
    )
    results = json.loads((out / "train_results.json").read_text())
    assert results["completed_steps"] == 2 and 0.0 <= results["knn_accuracy"] <= 1.0
    processor = SensorSpectrogramProcessor.from_pretrained(out / "encoder")
    assert len(processor.channel_means) == 52
    if not views:
        assert AutoModel.from_pretrained(out / "viewmaker").config.num_channels == 52


def test_sensor_pretraining_on_ts_series_with_a_short_stft(tmp_path, in_process):
    write_ts_file(tmp_path / "train.ts")
    write_ts_file(tmp_path / "test.ts", series_per_class=2, seed=1)
    out = tmp_path / "run"
    in_process(
        [
            "--domain",
            "sensor",
            "--train_file",
            str(tmp_path / "train.ts"),
            "--validation_file",
            str(tmp_path / "test.ts"),
            "--num_channels",
            "3",
            "--n_fft",
            "15",
            "--hop_length",
            "4",
            "--clamp_views",
            "false",
            "--output_dir",
            str(out),
            *ENCODER_TINY,
        ]
    )
    results = json.loads((out / "train_results.json").read_text())
    assert results["completed_steps"] == 2 and 0.0 <= results["knn_accuracy"] <= 1.0
    processor = SensorSpectrogramProcessor.from_pretrained(out / "encoder")
    assert (processor.num_channels, processor.n_fft, processor.hop_length) == (3, 15, 4)
    assert processor.num_frequency_bins == 8 and len(processor.channel_means) == 3
    # `model(**processor(windows))`: the processor's output is what the encoder takes.
    encoder = AutoModel.from_pretrained(out / "encoder").eval()
    windows = torch.randn(2, 3, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        by_keyword = encoder(**processor(windows)).pooler_output
        by_position = encoder(processor(windows)["input_features"]).pooler_output
    torch.testing.assert_close(by_keyword, by_position)


def test_speech_front_end_from_flags_with_fitted_statistics(tmp_path, in_process):
    write_librispeech_parquet(tmp_path / "train.parquet")
    out = tmp_path / "run"
    in_process(
        [
            "--domain",
            "audio",
            "--train_file",
            str(tmp_path / "train.parquet"),
            "--label_column_name",
            "speaker_id",
            "--audio_normalization",
            "fit",
            "--audio_max_length",
            "8000",
            "--n_fft",
            "256",
            "--hop_length",
            "258",
            "--image_size",
            "32",
            "--num_channels",
            "1",
            "--clamp_views",
            "false",
            "--output_dir",
            str(out),
            *ENCODER_TINY,
        ]
    )
    extractor = LogMelFeatureExtractor.from_pretrained(out / "encoder")
    assert (extractor.max_length, extractor.n_fft, extractor.hop_length, extractor.num_frames) == (8000, 256, 258, 32)
    # Fitted on the (9) training clips: they come out standardised, unlike with LibriSpeech's statistics.
    from datasets import Audio, load_dataset

    rows = load_dataset("parquet", data_files=str(tmp_path / "train.parquet"), split="train")
    clips = [decode_audio(value)[0] for value in rows.cast_column("audio", Audio(decode=False))["audio"]]
    features = extractor(clips)["input_features"]
    assert float(features.mean()) == pytest.approx(0.0, abs=1e-3) and float(features.std()) == pytest.approx(
        1.0, abs=1e-2
    )
    assert extractor.normalize_mean != pytest.approx(-22.924, abs=0.5)


def test_zero_steps_saves_the_untrained_models(tmp_path, in_process):
    in_process([*TINY, "--output_dir", str(tmp_path / "a"), "--max_steps", "0", "--seed", "3"])
    in_process([*TINY, "--output_dir", str(tmp_path / "b"), "--max_steps", "2", "--seed", "3"])
    results = json.loads((tmp_path / "a" / "train_results.json").read_text())
    assert results["completed_steps"] == 0 and results["encoder_loss_history"] == []
    untrained, trained = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert set(untrained) == set(trained) and any(not torch.equal(untrained[k], trained[k]) for k in untrained)
    assert ContrastiveResNetModel.from_pretrained(tmp_path / "a" / "encoder").config.embedding_dim == 16
    with pytest.raises(SystemExit):
        pretrain.parse_args([*TINY, "--max_steps", "-1"])


def test_a_data_source_on_the_command_line_replaces_the_recipes(tmp_path, in_process):
    """quickstart.yaml names the packaged Fashion-MNIST sample; `--dataset_name imagefolder --train_dir` must train
    on that folder instead (not on both, not on the recipe's), and the run says what it read."""
    folder = write_image_folder(tmp_path / "images", per_class=12)
    in_process(
        [
            *TINY,
            "--dataset_name",
            "imagefolder",
            "--train_dir",
            str(folder),
            "--validation_dir",
            str(folder),
            "--output_dir",
            str(tmp_path / "run"),
            "--max_steps",
            "1",
        ]
    )
    data = json.loads((tmp_path / "run" / "train_results.json").read_text())["data"]
    assert data["dataset"] == str(folder) and data["num_train_examples"] == 24
    saved = json.loads((tmp_path / "run" / "training_args.json").read_text())["data"]
    assert saved["packaged_dataset"] is None and saved["train_dir"] == str(folder)


def test_an_unreadable_image_is_named_or_skipped_with_a_count(tmp_path, in_process):
    folder = write_image_folder(tmp_path / "images", per_class=8)
    (folder / "boot" / "3.png").write_bytes(b"not a png")
    flags = [*TINY, "--dataset_name", "imagefolder", "--train_dir", str(folder), "--validation_dir", str(folder)]
    with pytest.raises(ValueError, match=r"boot/3\.png.*--skip_bad_examples"):
        in_process([*flags, "--output_dir", str(tmp_path / "strict"), "--max_steps", "1"])
    # One batch of 16 is the whole set, so every step meets the broken image and replaces it.
    in_process([*flags, "--output_dir", str(tmp_path / "run"), "--max_steps", "2", "--skip_bad_examples", "true"])
    results = json.loads((tmp_path / "run" / "train_results.json").read_text())
    assert results["completed_steps"] == 2 and results["skipped_examples"] == 2


def test_image_pretraining_with_expert_and_combined_views(tmp_path, in_process):
    for mode in ("expert", "viewmaker+expert"):
        in_process(
            [
                *TINY,
                "--output_dir",
                str(tmp_path / mode),
                "--max_steps",
                "2",
                "--view_mode",
                mode,
                "--expert_views",
                "simclr_image",
            ]
        )
        assert json.loads((tmp_path / mode / "train_results.json").read_text())["completed_steps"] == 2


def test_unreadable_clip_without_skipping_is_an_error_naming_the_file(tmp_path, in_process):
    write_librispeech_parquet(tmp_path / "train.parquet", corrupt=tuple(range(9)))
    with pytest.raises(ValueError, match=r"\.flac"):
        in_process(
            [
                "--domain",
                "audio",
                "--train_file",
                str(tmp_path / "train.parquet"),
                "--label_column_name",
                "speaker_id",
                "--image_size",
                "64",
                "--num_channels",
                "1",
                "--encoder_preset",
                "resnet18_audio",
                "--output_dir",
                str(tmp_path / "run"),
                *ENCODER_TINY,
            ]
        )


def test_gpu_path_options_train_and_save_plain_weights(tmp_path, in_process):
    in_process(
        [
            *TINY,
            "--output_dir",
            str(tmp_path),
            "--max_steps",
            "2",
            "--channels_last",
            "true",
            "--fused_optimizers",
            "true",
            "--torch_compile",
            "true",
            "--torch_compile_backend",
            "aot_eager",
            "--gradient_checkpointing",
            "selective",
        ]
    )
    results = json.loads((tmp_path / "train_results.json").read_text())
    assert all(math.isfinite(loss) for _, loss in results["encoder_loss_history"])
    # Compiled, channels-last training still saves ordinary state dicts (no `_orig_mod.` prefixes).
    assert all(not k.startswith("_orig_mod") for k in _weights(tmp_path))
    assert isinstance(AutoModel.from_pretrained(tmp_path / "viewmaker"), ViewmakerModel)


def test_data_on_device_trains_and_resumes_mid_epoch_to_the_same_weights(tmp_path, in_process):
    # 4 steps per epoch: the resumed run starts in the middle of the first epoch and crosses into the second.
    args = [
        *TINY,
        "--data_on_device",
        "true",
        "--fused_optimizers",
        "true",
        "--view_mode",
        "viewmaker+expert",
        "--expert_views",
        "simclr_image",
    ]
    in_process([*args, "--output_dir", str(tmp_path / "uninterrupted"), "--max_steps", "6"])
    resumed = tmp_path / "resumed"
    in_process([*args, "--output_dir", str(resumed), "--max_steps", "3", "--checkpointing_steps", "3"])
    in_process([*args, "--output_dir", str(resumed), "--max_steps", "6", "--resume_from_checkpoint", "latest"])
    expected, actual = _weights(tmp_path / "uninterrupted"), _weights(resumed)
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
    results = json.loads((resumed / "train_results.json").read_text())
    assert results["completed_steps"] == 6 and all(math.isfinite(loss) for _, loss in results["encoder_loss_history"])


def test_data_on_device_needs_the_image_domain(capsys):
    with pytest.raises(SystemExit):
        pretrain.parse_args(["--domain", "audio", "--data_on_device", "true"])
    assert "--data_on_device" in capsys.readouterr().err


def test_gradient_checkpointing_needs_a_viewmaker(capsys):
    with pytest.raises(SystemExit):
        pretrain.parse_args(["--view_mode", "expert", "--gradient_checkpointing", "full"])
    assert "--gradient_checkpointing" in capsys.readouterr().err


HOST_READS = ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy")


def test_the_training_step_never_waits_for_the_device(tmp_path, monkeypatch, in_process):
    """Between logging steps nothing in the step reads a tensor back to the host (on an accelerator each read would
    wait for every queued kernel): not the batch, the views, the model, the non-finite guard or the fused optimizers.
    Only the first step reads its skip flag on the host (see `AdversarialOptimizer.skipping_if`)."""
    state, reads = {"in_step": 0, "steps": 0}, []
    for name in HOST_READS:

        def read(self, *args, _original=getattr(torch.Tensor, name), _name=name, **kwargs):  # noqa: B008 (bound per name)
            if state["in_step"] and state["steps"] > 0:
                reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, read)

    def inside_the_step(function, counts_steps=False):
        def counted(*args, **kwargs):
            state["in_step"] += 1
            try:
                return function(*args, **kwargs)
            finally:
                state["in_step"] -= 1
                state["steps"] += counts_steps

        return counted

    monkeypatch.setattr(AdversarialStep, "forward_backward", inside_the_step(AdversarialStep.forward_backward))
    monkeypatch.setattr(AdversarialStep, "apply", inside_the_step(AdversarialStep.apply, counts_steps=True))
    monkeypatch.setattr(DeviceImageDataset, "batch", inside_the_step(DeviceImageDataset.batch))
    in_process(
        [
            *TINY,
            "--output_dir",
            str(tmp_path),
            "--max_steps",
            "4",
            "--data_on_device",
            "true",
            "--fused_optimizers",
            "true",
            "--view_mode",
            "viewmaker+expert",
            "--expert_views",
            "simclr_image",
        ]
    )
    assert state["steps"] == 4 and reads == []


READ_TRACKIO = """
import json
from trackio.sqlite_storage import SQLiteStorage

print(json.dumps({"logs": SQLiteStorage.get_logs("tests", "tiny"), "config": SQLiteStorage.get_run_config("tests", "tiny")}))
"""


def test_trackio_logs_the_scalars_the_view_grids_and_the_typed_config(tmp_path):
    pytest.importorskip("trackio")
    # trackio reads TRACKIO_DIR when it is imported: the run and the reader are fresh Pythons.
    env = {**ENV, "TRACKIO_DIR": str(tmp_path / "trackio")}
    flags = ["--report_to", "trackio", "--tracker_project_name", "tests", "--run_name", "tiny", "--max_steps", "2"]
    result = subprocess.run(
        _launch(tmp_path / "run", *flags), env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stderr[-4000:]
    read = json.loads(
        run_python(READ_TRACKIO, cwd=tmp_path, env={"TRACKIO_DIR": env["TRACKIO_DIR"]}, with_package=True)
    )
    losses = [entry["train/encoder_loss"] for entry in read["logs"] if "train/encoder_loss" in entry]
    assert len(losses) == 1 and math.isfinite(losses[0])  # --logging_steps 2
    grids = [entry["views"] for entry in read["logs"] if "views" in entry]
    assert grids and all(grid["_type"] == "trackio.image" for grid in grids)
    assert all((tmp_path / "trackio" / "media" / grid["file_path"]).is_file() for grid in grids)
    config = read["config"]  # the flags in their types, not as strings
    assert config["learning_rate"] == 0.03 and config["encoder_depths"] == [1, 1] and config["clamp_views"] is True


def test_an_unknown_tracker_is_named_with_the_accepted_ones(capsys):
    with pytest.raises(SystemExit):
        pretrain.parse_args([*TINY, "--report_to", "tensorbord"])
    assert "not a tracker (tensorbord); accepted: tensorboard, trackio" in capsys.readouterr().err


def test_divmaker_run_alternates_the_players_and_logs_the_diversity_loss(tmp_path, in_process):
    in_process([*TINY, "--output_dir", str(tmp_path / "untrained"), "--max_steps", "0"])
    in_process([*TINY, "--output_dir", str(tmp_path / "run"), "--max_steps", "2", "--viewmaker_objective", "divmaker"])
    saved = json.loads((tmp_path / "run" / "training_args.json").read_text())
    assert saved["objective"]["viewmaker_objective"] == "divmaker"
    assert saved["optimization"]["adversarial_update"] == "two_pass"  # resolved from the objective, and saved
    untrained, trained = _weights(tmp_path / "untrained"), _weights(tmp_path / "run")
    for part in ("viewmaker.", "encoder."):
        assert any(not torch.equal(untrained[k], trained[k]) for k in untrained if k.startswith(part)), part
    results = json.loads((tmp_path / "run" / "train_results.json").read_text())
    ((step, diversity),) = results["viewmaker_loss_history"]  # --logging_steps 2
    ((_, encoder_loss),) = results["encoder_loss_history"]
    # The diversity loss of 2 views is positive (its positive term is in its own softmax), unlike the adversary's -L.
    assert step == 2 and math.isfinite(diversity) and diversity > 0 and math.isfinite(encoder_loss)


def test_divmaker_refuses_the_one_pass_update_before_reading_data(capsys):
    with pytest.raises(SystemExit):
        pretrain.parse_args([*TINY, "--viewmaker_objective", "divmaker", "--adversarial_update", "one_pass"])
    error = capsys.readouterr().err
    assert "--viewmaker_objective divmaker" in error and "--adversarial_update two_pass" in error
    with pytest.raises(SystemExit):
        pretrain.parse_args([*TINY, "--viewmaker_objective", "divmaker", "--view_mode", "expert"])
    assert "(the update of --viewmaker_objective divmaker) needs a viewmaker" in capsys.readouterr().err
    assert pretrain.parse_args(TINY).optimization.adversarial_update == "one_pass"
