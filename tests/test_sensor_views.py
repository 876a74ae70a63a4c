"""The IMU expert views in pretraining, and a viewmaker of the raw sensor windows (docs/method.md §4.6)."""

import json
import math
from pathlib import Path

import pytest
import torch

from hf_viewmaker import ModelArguments, ObjectiveArguments, ViewArguments, ViewmakerForContrastivePretraining
from hf_viewmaker.adversarial import build_pretraining_config
from hf_viewmaker.processing import SensorSpectrogramProcessor
from hf_viewmaker.views import SpectralMaskingViews

from helpers import TINY_ENCODERS, load_script, run_in_process, write_ts_file

REPO_ROOT = Path(__file__).resolve().parents[1]

pretrain = load_script(REPO_ROOT / "training" / "pretrain.py")
linear_eval = load_script(REPO_ROOT / "training" / "linear_eval.py")
draw_views = load_script(REPO_ROOT / "tools" / "draw_views.py")
# Six channels (an accelerometer and a gyroscope) of 100 samples, the watch recipe's short STFT.
SENSOR_TINY = [
    "--domain", "sensor", "--num_channels", "6", "--n_fft", "15", "--hop_length", "8", "--clamp_views", "false",
    "--max_freq_mask", "3", "--max_time_mask", "3", "--per_device_train_batch_size", "4", "--max_steps", "2",
    "--knn_k", "3", "--report_to", "none", *TINY_ENCODERS,
]  # fmt: skip


@pytest.fixture
def series(tmp_path):
    write_ts_file(tmp_path / "train.ts", channels=6, length=100)
    write_ts_file(tmp_path / "test.ts", channels=6, length=100, series_per_class=2, seed=1)
    return ["--train_file", str(tmp_path / "train.ts"), "--validation_file", str(tmp_path / "test.ts")]


def test_imu_expert_views_pretrain(tmp_path, series, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "run"
    argv = [*SENSOR_TINY, *series, "--view_mode", "expert", "--expert_views", "imu", "--imu_max_rotation_degrees", "45"]
    run_in_process(pretrain.main, [*argv, "--output_dir", str(out)])
    results = json.loads((out / "train_results.json").read_text())
    assert results["completed_steps"] == 2 and all(math.isfinite(loss) for _, loss in results["encoder_loss_history"])
    assert json.loads((out / "training_args.json").read_text())["views"]["imu_max_rotation_degrees"] == 45.0
    write_ts_file(tmp_path / "four.ts", channels=4, length=100)
    with pytest.raises(ValueError, match=r"--expert_views imu .* 4 channels \(--num_channels\), not a multiple of 3"):
        run_in_process(
            pretrain.main, [*argv, "--train_file", str(tmp_path / "four.ts"), "--output_dir", str(out / "x")]
        )


def test_gradients_reach_a_raw_viewmaker_through_the_stft():
    windows = torch.randn(8, 6, 100, generator=torch.Generator().manual_seed(0))
    processor = SensorSpectrogramProcessor(num_channels=6, n_fft=15, hop_length=8, standardize_windows=True)
    processor.fit_statistics(windows)
    model_args = ModelArguments(
        viewmaker_input="raw", encoder_depths=[1], encoder_hidden_sizes=[8], encoder_stem_channels=8, num_res_blocks=1
    )
    config = build_pretraining_config(
        model_args, ObjectiveArguments(), ViewArguments(), 6, 8, None, front_end=processor.to_dict()
    )
    model = ViewmakerForContrastivePretraining(config)
    assert model.viewmaker.config.spatial_dims == 1
    inputs = processor.standardize(windows)
    masking = SpectralMaskingViews(3, 3)
    out = model(inputs, generator=torch.Generator().manual_seed(1), encoder_views=masking)
    assert out.views[0].shape == (8, 6, 100)
    out.loss.backward()
    gradients = [p.grad for p in model.viewmaker.parameters() if p.grad is not None]
    assert gradients and sum(float(g.abs().sum()) for g in gradients) > 0
    with torch.no_grad():
        assert torch.equal(model.normalize(inputs), processor.process(windows))


def test_raw_viewmaker_run_saves_a_processor_that_makes_its_spectrograms(tmp_path, series, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    built = []
    build_model = pretrain.build_model
    monkeypatch.setattr(pretrain, "build_model", lambda *args: built.append(build_model(*args)) or built[-1])
    out = tmp_path / "run"
    views = ["--view_mode", "viewmaker+expert", "--expert_views", "imu"]
    argv = [*SENSOR_TINY, *series, *views, "--viewmaker_input", "raw", "--max_steps", "1", "--output_dir", str(out)]
    run_in_process(pretrain.main, argv)
    assert json.loads((out / "train_results.json").read_text())["completed_steps"] == 1
    assert "| viewmaker input | raw sensor windows (1-D viewmaker) |" in (out / "README.md").read_text()
    encoder_processor = SensorSpectrogramProcessor.from_pretrained(out / "encoder")
    viewmaker_processor = SensorSpectrogramProcessor.from_pretrained(out / "viewmaker")
    assert encoder_processor.standardize_windows and viewmaker_processor.to_dict() == encoder_processor.to_dict()
    model = built[0].cpu().eval()
    windows = torch.randn(3, 6, 100, generator=torch.Generator().manual_seed(2)) * 5 + 1
    with torch.no_grad():
        front_end = model.normalize(viewmaker_processor.standardize(windows))
    assert torch.equal(encoder_processor(windows)["input_features"], front_end)
    draw_views.main([str(out), "--examples", "2", "--scale", "1", "--output", str(tmp_path / "views.png")])
    assert (tmp_path / "views.png").is_file()

    evaluation = tmp_path / "eval"
    probe = ["--domain", "sensor", *series, "--features", "pooled", "--num_train_epochs", "1"]
    probe += ["--per_device_train_batch_size", "4", "--report_to", "none"]
    run_in_process(linear_eval.main, [*probe, "--model_name_or_path", str(out), "--output_dir", str(evaluation)])
    results = json.loads((evaluation / "eval_results.json").read_text())
    assert 0.0 <= results["top1_accuracy"] <= 1.0 and results["input_shape"] == [6, 8, 13]


@pytest.mark.parametrize(
    "argv",
    [["--domain", "image"], ["--domain", "sensor", "--train_file", "x.ts", "--view_mode", "expert"]],
    ids=["image", "no_viewmaker"],
)
def test_raw_viewmaker_input_is_refused_without_a_sensor_viewmaker(argv, capsys):
    with pytest.raises(SystemExit):
        pretrain.parse_args([*argv, "--expert_views", "spectral_masking", "--viewmaker_input", "raw"])
    assert "--viewmaker_input raw makes a viewmaker perturb raw sensor windows" in capsys.readouterr().err
