"""tools/draw_views.py: the pictures of docs/results.md, drawn from a saved pretraining run."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import load_script, run_in_process, write_ts_file

REPO_ROOT = Path(__file__).resolve().parents[1]


pretrain = load_script(REPO_ROOT / "training" / "pretrain.py")
draw_views = load_script(REPO_ROOT / "tools" / "draw_views.py")


@pytest.fixture
def sensor_run(tmp_path, monkeypatch):
    """An untrained (--max_steps 0) sensor run on 4-channel series: its viewmaker still perturbs at full budget."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_ts_file(tmp_path / "train.ts", channels=4)
    write_ts_file(tmp_path / "test.ts", series_per_class=2, channels=4, seed=1)
    run_in_process(
        pretrain.main,
        [
            "--domain",
            "sensor",
            "--train_file",
            str(tmp_path / "train.ts"),
            "--validation_file",
            str(tmp_path / "test.ts"),
            "--num_channels",
            "4",
            "--n_fft",
            "15",
            "--hop_length",
            "4",
            "--clamp_views",
            "false",
            "--num_res_blocks",
            "1",
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
            "--per_device_train_batch_size",
            "4",
            "--max_steps",
            "0",
            "--report_to",
            "none",
            "--output_dir",
            str(tmp_path / "run"),
        ],
    )
    return tmp_path / "run"


def test_draws_inputs_views_and_perturbations_of_the_first_examples(sensor_run, tmp_path, capsys):
    output = tmp_path / "pictures" / "views.png"
    draw_views.main([str(sensor_run), "--examples", "2", "--scale", "1", "--output", str(output)])

    picture = np.asarray(Image.open(output))
    # Spectrograms of 8 frequency bins x 16 frames (64 steps, n_fft 15, hop 4); per example the 4 channels side by
    # side with a 1-pixel gap, then a 2-pixel gap; three rows (input, view, perturbation), each followed by 2 pixels.
    assert picture.shape == (3 * (8 + 2), 2 * (4 * 16 + 3 + 2))
    inputs, views, perturbations = (picture[row * 10 : row * 10 + 8] for row in range(3))
    assert not np.array_equal(inputs, views)
    assert perturbations.min() < 100 < 160 < perturbations.max()  # both signs around mid-grey
    assert f"{output}: {picture.shape[1]}x{picture.shape[0]} px" in capsys.readouterr().out


def test_a_run_without_a_viewmaker_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        draw_views.parse_args([str(tmp_path), "--output", str(tmp_path / "views.png")])
