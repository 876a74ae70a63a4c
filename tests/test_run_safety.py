"""What pretraining refuses before it does any work, and what it does with damaged or foreign checkpoints: each
fault injected into a real run of training/pretrain.py, the message asserted, nothing lost."""

import json
import logging
from pathlib import Path

import pytest

from helpers import TINY_MODEL, load_script

REPO_ROOT = Path(__file__).resolve().parents[1]
pretrain = load_script(REPO_ROOT / "training" / "pretrain.py")
QUICKSTART = REPO_ROOT / "training" / "configs" / "quickstart.yaml"
TINY = [
    "--config", str(QUICKSTART), *TINY_MODEL,
    "--per_device_train_batch_size", "16", "--max_train_samples", "64", "--max_eval_samples", "32",
    "--knn_max_train_samples", "64", "--report_to", "none", "--logging_steps", "1", "--checkpointing_steps", "1",
]  # fmt: skip


@pytest.fixture
def train(monkeypatch):
    """`train(output_dir, *flags)`: a 2-step run of the tiny quickstart in this process."""
    from accelerate.state import AcceleratorState

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def run(output_dir, *flags):
        AcceleratorState._reset_state(reset_partial_state=True)
        try:
            pretrain.main([*TINY, "--output_dir", str(output_dir), "--max_steps", "2", *flags])
        finally:
            AcceleratorState._reset_state(reset_partial_state=True)

    return run


def _no_data_may_load(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the data were loaded before the run was refused")

    monkeypatch.setattr(pretrain, "build_pipeline", refuse)


def test_an_output_dir_that_cannot_be_written_is_refused_before_any_work(tmp_path, train, monkeypatch):
    (tmp_path / "a_file").write_text("")
    _no_data_may_load(monkeypatch)
    with pytest.raises(PermissionError, match="--output_dir .*a_file/run cannot be written to"):
        train(tmp_path / "a_file" / "run")


def test_a_new_run_never_starts_over_another_runs_folder(tmp_path, train, monkeypatch):
    train(tmp_path / "run")
    before = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    with monkeypatch.context() as patched:
        _no_data_may_load(patched)
        with pytest.raises(FileExistsError, match="holds another run .*--overwrite_output_dir"):
            train(tmp_path / "run", "--seed", "1")
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == before  # nothing lost
    # Replacing it on purpose: the old checkpoints go first, so the rotation keeps the new run's.
    train(tmp_path / "run", "--seed", "1", "--overwrite_output_dir", "true", "--max_steps", "1")
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step_1"]
    assert json.loads((tmp_path / "run" / "training_args.json").read_text())["training"]["seed"] == 1


def test_resuming_with_arguments_that_change_the_results_is_refused_by_name(tmp_path, train):
    train(tmp_path / "run")
    with pytest.raises(ValueError, match=r"--distortion_budget 0\.05 -> 0\.1; --seed 0 -> 1"):
        train(tmp_path / "run", "--resume_from_checkpoint", "latest", "--seed", "1", "--distortion_budget", "0.1")
    # Running longer is not such a change; the flag allows the others.
    train(tmp_path / "run", "--resume_from_checkpoint", "latest", "--max_steps", "3")
    train(tmp_path / "run", "--resume_from_checkpoint", "latest", "--max_steps", "4", "--seed", "1",
          "--resume_with_changed_arguments", "true")  # fmt: skip
    history = json.loads((tmp_path / "run" / "train_results.json").read_text())["encoder_loss_history"]
    assert [step for step, _ in history] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda step: (step / "model.safetensors").unlink(), "model.safetensors is missing"),
        (lambda step: (step / "model.safetensors").write_bytes((step / "model.safetensors").read_bytes()[:1000]),
         "model.safetensors cannot be read"),
        (lambda step: (step / "training_state.json").write_text("{not json"), "training_state.json is not valid JSON"),
    ],
    ids=["deleted_weights", "truncated_weights", "broken_state"],
)  # fmt: skip
def test_latest_passes_over_a_damaged_checkpoint_naming_the_file(tmp_path, train, caplog, damage, named):
    train(tmp_path / "run")
    damage(tmp_path / "run" / "checkpoints" / "step_2")
    # Named explicitly, the damaged checkpoint is an error naming the file.
    with pytest.raises((ValueError, FileNotFoundError), match="step_2"):
        train(tmp_path / "run", "--resume_from_checkpoint", str(tmp_path / "run" / "checkpoints" / "step_2"))
    # `latest` falls back to the newest intact one, with a warning that says what was wrong.
    with caplog.at_level(logging.WARNING):
        train(tmp_path / "run", "--resume_from_checkpoint", "latest", "--max_steps", "3")
    assert named in caplog.text and "resuming from" in caplog.text and "step_1" in caplog.text
    assert json.loads((tmp_path / "run" / "train_results.json").read_text())["completed_steps"] == 3


def test_a_checkpoint_without_its_rng_state_resumes_only_when_told(tmp_path, train):
    train(tmp_path / "run")
    for step in ("step_1", "step_2"):
        (tmp_path / "run" / "checkpoints" / step / "random_states_0.pkl").unlink()
    with pytest.raises(ValueError, match="random_states_0.pkl.*--resume_without_rng_states"):
        train(tmp_path / "run", "--resume_from_checkpoint", "latest", "--max_steps", "3")
    train(tmp_path / "run", "--resume_from_checkpoint", "latest", "--max_steps", "3", "--resume_without_rng_states",
          "true")  # fmt: skip
    assert json.loads((tmp_path / "run" / "train_results.json").read_text())["completed_steps"] == 3


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--learning_rate", "-0.1"], "--learning_rate must be >= 0"),
        (["--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be >= 1"),
        (["--checkpointing_steps", "0"], "--checkpointing_steps must be a positive integer"),
        (["--distortion_budget", "inf"], "--distortion_budget must be a positive finite number"),
        (["--config", "no/such/recipe.yaml"], "no/such/recipe.yaml: no such file"),
        (["--num_res_blocks", "6"], "num_res_blocks must be in 0..5"),
    ],
)
def test_bad_settings_are_one_line_errors_before_any_data_loads(tmp_path, train, monkeypatch, capsys, flags, named):
    _no_data_may_load(monkeypatch)
    with pytest.raises(SystemExit):
        train(tmp_path / "run", *flags)
    assert named in capsys.readouterr().err


def test_a_finished_run_without_checkpoints_is_not_taken_for_one_to_resume(tmp_path, train):
    train(tmp_path / "run", "--checkpointing_steps", "epoch", "--max_steps", "1")
    for step in (tmp_path / "run" / "checkpoints").iterdir():  # a finished run whose checkpoints were cleaned up
        import shutil

        shutil.rmtree(step)
    with pytest.raises(FileExistsError, match="holds another run"):
        train(tmp_path / "run", "--resume_from_checkpoint", "latest")


def test_replacing_a_run_deletes_only_what_the_run_wrote(tmp_path, train):
    train(tmp_path / "run")
    (tmp_path / "run" / "checkpoints" / "my_notes.txt").write_text("mine")
    (tmp_path / "run" / "data.csv").write_text("mine too")
    train(tmp_path / "run", "--overwrite_output_dir", "true", "--max_steps", "1")
    assert (tmp_path / "run" / "checkpoints" / "my_notes.txt").read_text() == "mine"
    assert (tmp_path / "run" / "data.csv").read_text() == "mine too"
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["my_notes.txt", "step_1"]


def test_a_resume_may_start_skipping_unreadable_examples(tmp_path, train):
    train(tmp_path / "run")
    train(tmp_path / "run", "--resume_from_checkpoint", "latest", "--max_steps", "3", "--skip_bad_examples", "true")
    assert json.loads((tmp_path / "run" / "train_results.json").read_text())["completed_steps"] == 3
