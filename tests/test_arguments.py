"""The typed argument groups: recipes, numbers, saved runs, and the README's flag tables."""

import inspect
import json
from pathlib import Path

import pytest

from hf_viewmaker import ContrastiveResNetConfig
from hf_viewmaker.arguments import (
    DOMAINS,
    ENCODER_PRESETS,
    EXPERT_VIEWS,
    FEATURE_TYPES,
    LR_SCHEDULES,
    PACKAGED_DATASETS,
    SPEECH_DATASETS,
    TRANSFER_DATASETS,
    DataArguments,
    ModelArguments,
    PretrainingRun,
    ProbeArguments,
    RobustnessArguments,
    build_parser,
    parse_arguments,
)
from hf_viewmaker.data import PACKAGED_DATASETS as PACKAGED_DATASET_FILES
from hf_viewmaker.data import SPEECH_TRANSFER_DATASETS
from hf_viewmaker.data.pipelines import EXPERT_VIEWS as EXPERT_VIEWS_PER_DOMAIN
from hf_viewmaker.evaluation import corruptions, linear_probe
from hf_viewmaker.processing import DATASET_NORMALIZATION_STATS

from helpers import load_script

REPO_ROOT = Path(__file__).resolve().parents[1]


def _parse(argv):
    return PretrainingRun(*parse_arguments(build_parser(PretrainingRun.group_types()), argv))


def test_flags_override_the_recipe_and_land_in_their_groups(tmp_path):
    (tmp_path / "r.yaml").write_text(
        "learning_rate: 0.5\nimage_size: 28\nview_mode: expert\nexpert_views: simclr_image\n"
    )
    run = _parse(["--config", str(tmp_path / "r.yaml"), "--image_size", "16", "--label_column_name", "none"])
    assert run.optimization.learning_rate == 0.5 and run.inputs.image_size == 16
    assert run.views.uses_expert_views and not run.views.uses_viewmaker
    assert run.data.label_column_name is None  # "none" means: no labels


def test_numbers_take_the_type_their_field_declares(tmp_path):
    (tmp_path / "r.yaml").write_text(
        "distortion_budget: 1\nnum_res_blocks: 2.0\nnormalize_mean: [0]\nnormalize_std: [1]\n"
    )
    run = _parse(["--config", str(tmp_path / "r.yaml")])
    assert run.model.distortion_budget == 1.0 and isinstance(run.model.distortion_budget, float)
    assert run.model.num_res_blocks == 2 and isinstance(run.model.num_res_blocks, int)
    assert run.inputs.normalize_mean == [0.0] and isinstance(run.inputs.normalize_mean[0], float)
    assert isinstance(ModelArguments(distortion_budget=1).distortion_budget, float)
    with pytest.raises(ValueError, match="num_res_blocks"):
        ModelArguments(num_res_blocks=2.5)


@pytest.mark.parametrize(
    ("recipe", "message"),
    [
        ("lerning_rate: 0.2\n", "lerning_rate"),
        ("learning_rate: [0.1\n", "not valid YAML"),
        ("- 1\n- 2\n", "mapping"),
        ("num_res_blocks: 2.5\n", "num_res_blocks"),
        ("max_steps: -1\n", "--max_steps"),
        ("checkpointing_steps: often\n", "--checkpointing_steps"),
    ],
)
def test_a_bad_recipe_is_a_one_line_error_naming_it(tmp_path, capsys, recipe, message):
    (tmp_path / "r.yaml").write_text(recipe)
    with pytest.raises(SystemExit):
        _parse(["--config", str(tmp_path / "r.yaml")])
    assert message in capsys.readouterr().err


def test_a_source_on_the_command_line_replaces_the_recipes_source_and_its_details(tmp_path):
    (tmp_path / "r.yaml").write_text(
        "transfer_dataset: librispeech_speaker_id\ndata_dir: LibriSpeech\ndomain: audio\nlabel_column_name: speaker\n"
    )
    run = _parse(["--config", str(tmp_path / "r.yaml"), "--train_file", "clips.parquet"])
    assert (run.data.transfer_dataset, run.data.data_dir, run.data.train_file) == (None, None, "clips.parquet")
    assert run.data.domain == "audio" and run.data.label_column_name == "speaker"  # not a source: kept
    # A detail alone (the recipe's folder moved) keeps the recipe's source.
    run = _parse(["--config", str(tmp_path / "r.yaml"), "--data_dir", "elsewhere"])
    assert (run.data.transfer_dataset, run.data.data_dir) == ("librispeech_speaker_id", "elsewhere")


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--packaged_dataset", "fashion_mnist_sample", "--train_dir", "d"], "--packaged_dataset and --train_dir"),
        (["--dataset_name", "uoft-cs/cifar10", "--train_file", "f.parquet"], "--dataset_name and --train_file"),
        (["--domain", "sensor", "--train_file", "s.ts", "--data_dir", "p"], "--train_file and --data_dir"),
    ],
)
def test_two_sources_at_one_level_are_an_error_naming_both(capsys, argv, named):
    with pytest.raises(SystemExit):
        _parse(argv)
    assert named in capsys.readouterr().err


def test_train_dir_implies_the_imagefolder_builder():
    run = _parse(["--dataset_name", "imagefolder", "--train_dir", "d"])
    assert (run.data.dataset_name, run.data.train_dir) == (None, "d")


def test_a_missing_recipe_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _parse(["--config", str(tmp_path / "nope.yaml")])
    assert "nope.yaml: no such file" in capsys.readouterr().err


def test_a_run_saves_its_groups_and_loads_them_back(tmp_path):
    run = _parse(["--distortion_budget", "0.1", "--data_dir", "somewhere", "--report_to", "none"])
    run.save(tmp_path)
    saved = json.loads((tmp_path / "training_args.json").read_text())
    assert saved["model"]["distortion_budget"] == 0.1 and saved["data"]["data_dir"] == "somewhere"
    assert PretrainingRun.load(tmp_path) == run
    saved["model"]["budget"] = 1
    with pytest.raises(ValueError, match="budget"):
        PretrainingRun.from_dict(saved)


def test_runs_saved_before_the_groups_still_load():
    flat = {"config": "r.yaml", "distortion_budget": 0.2, "domain": "audio", "seed": 3, "expert_views": "none"}
    run = PretrainingRun.from_dict(flat)
    assert (run.model.distortion_budget, run.data.domain, run.training.seed) == (0.2, "audio", 3)
    with pytest.raises(ValueError, match="no_such_flag"):
        PretrainingRun.from_dict({**flat, "no_such_flag": 1})


def test_the_choices_agree_with_what_the_library_provides():
    assert set(TRANSFER_DATASETS) == set(SPEECH_TRANSFER_DATASETS)
    assert set(SPEECH_DATASETS) == set(DATASET_NORMALIZATION_STATS)
    assert set(EXPERT_VIEWS) == {name for names in EXPERT_VIEWS_PER_DOMAIN.values() for name in names}
    assert set(DOMAINS) == set(EXPERT_VIEWS_PER_DOMAIN) and set(PACKAGED_DATASETS) == set(PACKAGED_DATASET_FILES)
    assert all(callable(getattr(ContrastiveResNetConfig, preset)) for preset in ENCODER_PRESETS)
    assert LR_SCHEDULES == linear_probe.LR_SCHEDULES and FEATURE_TYPES == linear_probe.FEATURE_TYPES
    # Both read the layout from the folder (its manifest, else the release's) unless told.
    default = RobustnessArguments().cifar10c_images_per_severity
    assert (
        default is None
        and inspect.signature(corruptions.load_cifar10c).parameters["images_per_severity"].default is None
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: DataArguments(data_dir=""), "--data_dir none"),
        (lambda: DataArguments(transfer_dataset="audio_mnist"), "--domain audio"),
        (lambda: DataArguments(domain="audio", transfer_dataset="fluent_speech_commands"), "--caller_intent"),
        (lambda: ProbeArguments(encoder_subfolder="auto"), "leave --encoder_subfolder unset"),
    ],
)
def test_old_sentinels_and_incomplete_sources_are_refused_by_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_images_that_are_not_rgb_need_their_own_statistics(capsys):
    pretrain = load_script(REPO_ROOT / "training" / "pretrain.py")
    with pytest.raises(SystemExit):
        pretrain.parse_args(["--packaged_dataset", "fashion_mnist_sample", "--num_channels", "1"])
    assert "1-channel images need their own --normalize_mean" in capsys.readouterr().err
    run = pretrain.parse_args(["--num_channels", "1", "--normalize_mean", "0.3", "--normalize_std", "0.2"])
    assert run.inputs.normalize_mean == [0.3]


def test_the_readme_flag_tables_are_the_parsers(monkeypatch):
    """Every flag, its default and its help, table by table, as `tools/write_flag_tables.py` renders them."""
    tool = load_script(REPO_ROOT / "tools" / "write_flag_tables.py")
    readme = (REPO_ROOT / "README.md").read_text()
    assert tool.render(readme) == readme, "README.md's flag tables are stale: run python tools/write_flag_tables.py"
    monkeypatch.syspath_prepend(str(REPO_ROOT / "training"))
    for script in tool.SCRIPTS:
        parser = load_script(REPO_ROOT / "training" / f"{script}.py").build_parser()
        flags = [
            action.option_strings[0]
            for action in parser._actions
            if action.option_strings and action.dest != "help" and not action.option_strings[0].startswith("--no_")
        ]
        assert [f for f in flags if f"| `{f}` |" not in readme] == []


def test_a_sensor_folder_on_the_command_line_replaces_the_recipes_series_file(tmp_path):
    (tmp_path / "r.yaml").write_text("domain: sensor\ntrain_file: series.ts\nvalidation_file: test.ts\n")
    run = _parse(["--config", str(tmp_path / "r.yaml"), "--data_dir", "PAMAP2"])
    assert (run.data.train_file, run.data.validation_file, run.data.data_dir) == (None, None, "PAMAP2")


def test_naming_the_recipes_own_source_again_keeps_its_details(tmp_path):
    (tmp_path / "r.yaml").write_text("dataset_name: uoft-cs/cifar10\nvalidation_split: test\ntrain_split: train\n")
    run = _parse(["--config", str(tmp_path / "r.yaml"), "--dataset_name", "uoft-cs/cifar10"])
    assert (run.data.dataset_name, run.data.validation_split) == ("uoft-cs/cifar10", "test")


def test_abbreviated_flags_are_refused(capsys):
    with pytest.raises(SystemExit):
        _parse(["--train_di", "folder"])
    assert "--train_di" in capsys.readouterr().err


def test_a_run_resolves_clamping_by_domain_and_the_builder_takes_unresolved_arguments():
    from hf_viewmaker import ObjectiveArguments, ViewArguments
    from hf_viewmaker.adversarial import build_pretraining_config

    assert _parse([]).model.clamp_views is True and _parse(["--domain", "audio"]).model.clamp_views is False
    config = build_pretraining_config(ModelArguments(), ObjectiveArguments(), ViewArguments(), 3, 32, 10)
    assert config.viewmaker_config.clamp is True


def test_the_readme_library_snippet_runs(capsys):
    readme = (REPO_ROOT / "README.md").read_text()
    code = readme.split("<!-- library-snippet -->")[1].split("<!-- /library-snippet -->")[0]
    exec(code.strip().removeprefix("```python").removesuffix("```"), {})
    assert capsys.readouterr().out.strip() == "4000 torch.Size([1, 28, 28])"
