"""training/compare_views.py: the small-scale comparison driver, end to end on tiny synthetic series."""

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from helpers import load_script, write_ts_file

REPO_ROOT = Path(__file__).resolve().parents[1]
compare_views = load_script(REPO_ROOT / "training" / "compare_views.py")

RECIPE = """domain: sensor
train_file: {data}/train.ts
validation_file: {data}/test.ts
num_channels: 3
n_fft: 15
hop_length: 4
encoder_depths: [1, 1]
encoder_hidden_sizes: [8, 16]
encoder_stem_channels: 8
embedding_dim: 16
num_res_blocks: 1
clamp_views: false
expert_views: spectral_masking
max_freq_mask: 2
max_time_mask: 2
per_device_train_batch_size: 4
num_train_epochs: 1
knn_k: 3
report_to: none
"""
EVAL_RECIPE = """domain: sensor
train_file: {data}/train.ts
validation_file: {data}/test.ts
features: pooled
train_views: none
num_train_epochs: 2
per_device_train_batch_size: 4
report_to: none
"""


def test_every_cell_is_run_recorded_tabulated_and_reused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write_ts_file(tmp_path / "train.ts", series_per_class=3)
    write_ts_file(tmp_path / "test.ts", series_per_class=2, seed=1)
    (tmp_path / "tiny.yaml").write_text(RECIPE.format(data=tmp_path))
    (tmp_path / "eval_tiny.yaml").write_text(EVAL_RECIPE.format(data=tmp_path))
    (tmp_path / "eval_tiny_other.yaml").write_text(EVAL_RECIPE.format(data=tmp_path))
    argv = [
        "--domain",
        "tiny",
        "--config_dir",
        str(tmp_path),
        "--methods",
        "viewmaker",
        "--seeds",
        "1",
        # The recipe's own budget (0.05) and one more.
        "--distortion_budgets",
        "0.05",
        "0.2",
        "--transfer_tasks",
        "other",
        "--output_dir",
        str(tmp_path / "out"),
        "--",
        "--max_train_samples",
        "8",
    ]
    compare_views.main(argv)

    out = tmp_path / "out" / "tiny"
    summary = json.loads((out / "summary.json").read_text())
    records = summary["records"]
    assert [(r["method"], r["distortion_budget"], r["seed"]) for r in records] == [
        ("viewmaker", 0.05, 1),
        ("viewmaker", 0.2, 1),
    ]
    assert (out / "viewmaker" / "seed1" / "record.json").is_file()
    assert (out / "viewmaker_budget0.2" / "seed1" / "record.json").is_file()
    assert "--distortion_budget 0.2" in records[1]["pretrain_command"]
    assert all(0.0 <= r["top1"] <= 1.0 and 0.0 <= r["transfer"]["other"]["top1"] <= 1.0 for r in records)
    # Trained on the 8 series the extra flag keeps (2 steps of 4).
    assert all(r["pretrain_steps"] == 2 and "--max_train_samples 8" in r["pretrain_command"] for r in records)
    # RankMe of the 16-d pooled features of the 6 test series: at most 6.
    assert all(1.0 <= r["rankme"] <= r["rankme_max"] == 6 for r in records)
    rows = summary["table"].splitlines()[2:]
    assert [row.split(" | ")[:3] for row in rows] == [
        ["| viewmaker", "0.05", f"{100 * records[0]['top1']:.1f}"],
        ["| viewmaker", "0.2", f"{100 * records[1]['top1']:.1f}"],
    ]
    assert summary["table"] in capsys.readouterr().out
    (choice,) = summary["budget_choice"]
    assert choice["chosen_by_rankme"] == (0.05 if records[0]["rankme"] >= records[1]["rankme"] else 0.2)

    # A second invocation reuses every finished cell instead of training again; a record an earlier version of the
    # driver wrote is rebuilt from the cell's files, keeping the times it measured.
    first = (out / "viewmaker" / "seed1" / "record.json").stat().st_mtime_ns
    cell = out / "viewmaker_budget0.2" / "seed1"
    original = json.loads((cell / "record.json").read_text())
    record = dict(original)
    del record["record_format"], record["rankme"]
    (cell / "record.json").write_text(json.dumps({**record, "pretrain_seconds": 123.4}))
    compare_views.main(argv)
    assert (out / "viewmaker" / "seed1" / "record.json").stat().st_mtime_ns == first
    assert json.loads((cell / "record.json").read_text()) == {**original, "pretrain_seconds": 123.4}

    # Interrupted after its pretraining: only the evaluations are redone.
    trained = (cell / "pretrain" / "train_results.json").stat().st_mtime_ns
    for name in ("record.json", "linear_eval", "transfer_other"):
        shutil.rmtree(cell / name) if (cell / name).is_dir() else (cell / name).unlink()
    # Interrupted during its pretraining (after its one epoch's checkpoint): it resumes from the checkpoint, and its
    # evaluations are redone with the encoder it then saves.
    interrupted = out / "viewmaker" / "seed1"
    for name in ("record.json", "pretrain/train_results.json", "pretrain/encoder"):
        shutil.rmtree(interrupted / name) if (interrupted / name).is_dir() else (interrupted / name).unlink()
    compare_views.main(argv)
    assert (cell / "pretrain" / "train_results.json").stat().st_mtime_ns == trained
    assert json.loads((cell / "record.json").read_text())["top1"] == records[1]["top1"]
    assert "resumed from" in (interrupted / "pretrain.log").read_text()
    assert (interrupted / "linear_eval" / "eval_results.json").stat().st_mtime_ns > first
    assert json.loads((interrupted / "record.json").read_text())["top1"] == records[0]["top1"]


def _record(method: str, seed: int, budget: float, top1: float, rankme: float, corruption: float | None = None):
    return {
        "method": method,
        "seed": seed,
        "distortion_budget": budget,
        "top1": top1,
        "transfer": {},
        "corruption_top1": corruption,
        "corruptions": None if corruption is None else {"fog": corruption - 0.1, "contrast": corruption + 0.1},
        "rankme": rankme,
        "final_loss": 0.5,
        "pretrain_seconds": 60.0,
        "linear_eval_seconds": 30.0,
        "pretrain_steps": 10,
    }


def test_tables_pair_seeds_and_choose_the_budget_of_highest_rankme():
    records = [_record("expert", seed, 0.05, 0.80 + seed / 100, 20.0, corruption=0.6) for seed in range(5)]
    records += [_record("viewmaker", seed, 0.05, 0.78 + seed / 100, 10.0 + seed) for seed in range(5)]
    # The sweep's best accuracy is at 0.2, but RankMe is highest at 0.1.
    records += [_record("viewmaker", seed, 0.1, 0.79, 30.0) for seed in range(5)]
    records += [_record("viewmaker", seed, 0.2, 0.83, 25.0) for seed in range(5)]
    rows = compare_views.table(records).splitlines()
    assert "mean corruption top-1 (%)" in rows[0]
    assert rows[2].startswith("| expert | – | 82.0 ± 1.6 | 60.0 ± 0.0 | 20.0 ± 0.0 |")
    assert rows[3].startswith("| viewmaker | 0.05 | 80.0 ± 1.6 | – | 12.0 ± 1.6 |")
    (paired,) = compare_views.paired_table(records[:10]).splitlines()[2:]
    # expert - viewmaker is 2 points on every seed: all 32 sign flips but the two all-alike ones are less extreme.
    assert paired == "| expert | viewmaker | 2.0 ± 0.0 | 5 of 5 seeds | 0.062 |"
    (choice,) = compare_views.budget_choice(records)
    assert (choice["chosen_by_rankme"], choice["best_by_top1"]) == (0.1, 0.2)
    assert choice["points_lost_by_choosing_without_labels"] == pytest.approx(4.0)


def test_corruption_tables_pair_seeds_and_list_each_corruption():
    records = [_record("expert", seed, 0.05, 0.8, 20.0, corruption=0.60 + seed / 100) for seed in range(3)]
    records += [_record("viewmaker+expert", seed, 0.05, 0.8, 20.0, corruption=0.63 + seed / 100) for seed in range(3)]
    records += [_record("viewmaker", seed, 0.05, 0.8, 20.0) for seed in range(3)]  # not evaluated on corruptions
    (paired,) = compare_views.paired_table(records, "corruption_top1").splitlines()[2:]
    assert paired == "| expert | viewmaker+expert | -3.0 ± 0.0 | 0 of 3 seeds | 0.250 |"
    for seed, record in enumerate(records):
        record["transfer"] = {"other": {"top1": 0.5 + (seed % 3) / 100 + (record["method"] == "viewmaker") / 10}}
    expert_vs_viewmaker = compare_views.paired_table(records, "transfer:other").splitlines()[3]
    assert expert_vs_viewmaker == "| expert | viewmaker | -10.0 ± 0.0 | 0 of 3 seeds | 0.250 |"
    assert compare_views.corruption_table(records).splitlines() == [
        "| corruption | expert top-1 (%) | viewmaker+expert (0.05) top-1 (%) |",
        "|---|---|---|",
        "| fog | 51.0 ± 1.0 | 54.0 ± 1.0 |",
        "| contrast | 71.0 ± 1.0 | 74.0 ± 1.0 |",
    ]
    assert compare_views.corruption_table(records[6:]) == ""


def test_a_domain_without_recipes_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        compare_views.parse_args(["--domain", "nope", "--config_dir", str(tmp_path)])


def test_every_command_and_picture_of_the_results_page_is_valid():
    page = (REPO_ROOT / "docs" / "results.md").read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page)
    assert len(pictures) == 3 and all((REPO_ROOT / "docs" / picture).is_file() for picture in pictures)
    # Commands in code spans or blocks, up to a closing backtick, a comment or the end of the line.
    commands = re.findall(r"compare_views\.py ([^`#\n]*)", page)
    assert len(commands) >= 3
    for command in commands:
        args, _ = compare_views.parse_args(shlex.split(command.replace("<domain>", "fashion_mnist")))
        assert set(args.methods) <= set(compare_views.METHODS)
    assert {"fashion_mnist", "asterisk", "basic_motions"} <= set(re.findall(r"--domain (\w+)", page))
