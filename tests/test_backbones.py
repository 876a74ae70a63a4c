"""Pretraining with any transformers backbone (`--encoder_config_name`, `--encoder_name_or_path`): tiny ViT, ConvNeXt,
Swin and audio spectrogram transformer encoders train for a few steps, save as the backbone's own model (loadable
without this package), continue from a run, and are evaluated by linear probes and kNN."""

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from transformers import ASTConfig, ConvNextConfig, SwinConfig, ViTConfig

from hf_viewmaker import ViewmakerModel
from hf_viewmaker.adversarial import build_pretraining_config, build_pretraining_model, learning_rate_at
from hf_viewmaker.arguments import ModelArguments, ObjectiveArguments, ViewArguments
from hf_viewmaker.hub import collect_run_files
from hf_viewmaker.models.pretraining.backbone_encoder import BackboneWithProjection

from helpers import load_script, run_in_process, run_python, write_librispeech_parquet, write_ts_file

REPO_ROOT = Path(__file__).resolve().parents[1]
pretrain = load_script(REPO_ROOT / "training" / "pretrain.py")
linear_eval = load_script(REPO_ROOT / "training" / "linear_eval.py")

# Tiny backbones for 1-channel 16x16 images, and an AST for 32x32 log-mels.
BACKBONES = {
    "vit": ViTConfig(
        image_size=16, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32,
    ),
    "convnext": ConvNextConfig(num_channels=1, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, image_size=16),
    "swin": SwinConfig(
        image_size=16, patch_size=2, num_channels=1, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=2
    ),
    "ast": ASTConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, num_mel_bins=32,
        max_length=32, patch_size=8, frequency_stride=8, time_stride=8,
    ),
}  # fmt: skip
COMMON = [
    "--report_to", "none", "--max_steps", "2", "--logging_steps", "1", "--embedding_dim", "8", "--num_res_blocks",
    "1", "--encoder_optimizer", "adamw", "--learning_rate", "0.001", "--lr_scheduler_type", "cosine",
    "--num_warmup_steps", "1",
]  # fmt: skip
IMAGES = [
    "--config", str(REPO_ROOT / "training" / "configs" / "quickstart.yaml"), "--image_size", "16",
    "--per_device_train_batch_size", "16", "--max_train_samples", "64", "--max_eval_samples", "32",
    "--knn_max_train_samples", "64",
]  # fmt: skip
EVALUATION = [
    "--report_to", "none", "--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--features", "pooled",
    "--max_train_samples", "32", "--max_eval_samples", "16",
]  # fmt: skip


def _speech_data(tmp_path: Path) -> list[str]:
    write_librispeech_parquet(tmp_path / "train.parquet")
    write_librispeech_parquet(tmp_path / "validation.parquet", speakers=(3, 19), per_speaker=2, seed=40)
    return [
        "--domain", "audio", "--train_file", str(tmp_path / "train.parquet"), "--validation_file",
        str(tmp_path / "validation.parquet"), "--label_column_name", "speaker_id", "--image_size", "32",
        "--num_channels", "1", "--clamp_views", "false", "--per_device_train_batch_size", "4", "--knn_k", "3",
    ]  # fmt: skip


LOAD_AS_ITS_OWN_CLASS = """
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel

model = AutoModel.from_pretrained(sys.argv[1]).eval()  # neither hf_viewmaker nor trust_remote_code
inputs = load_file(sys.argv[2])["inputs"]
with torch.no_grad():
    out = model(**{model.main_input_name: inputs})
print(type(model).__name__)
save_file({"pooled": out.pooler_output.contiguous()}, sys.argv[3])
"""


@pytest.mark.parametrize("name", BACKBONES)
def test_a_backbone_pretrains_saves_as_its_own_model_and_is_evaluated(tmp_path, name):
    from safetensors.torch import load_file, save_file

    BACKBONES[name].save_pretrained(tmp_path / "backbone")
    data = _speech_data(tmp_path) if name == "ast" else IMAGES
    run = tmp_path / "run"
    run_in_process(
        pretrain.main, [*data, *COMMON, "--encoder_config_name", str(tmp_path / "backbone"), "--output_dir", str(run)]
    )
    results = json.loads((run / "train_results.json").read_text())
    assert results["completed_steps"] == 2 and all(math.isfinite(loss) for _, loss in results["encoder_loss_history"])
    assert json.loads((run / "encoder" / "config.json").read_text())["model_type"] == BACKBONES[name].model_type
    assert (run / "encoder" / "projection_head.safetensors").is_file()
    assert {"projection_head.safetensors", "projection_head.json", "model.safetensors"} <= set(collect_run_files(run))

    # The encoder is the backbone's own model: it loads as its class in a Python without this package.
    encoder = BackboneWithProjection.from_pretrained(run / "encoder").eval()
    views = torch.rand(2, 1, *(32, 32) if name == "ast" else (16, 16), generator=torch.Generator().manual_seed(0))
    inputs = views[:, 0].transpose(1, 2) if name == "ast" else views
    save_file({"inputs": inputs.contiguous()}, tmp_path / "inputs.safetensors")
    printed = run_python(
        LOAD_AS_ITS_OWN_CLASS, run / "encoder", tmp_path / "inputs.safetensors", tmp_path / "out.safetensors",
        cwd=tmp_path, env={},
    )  # fmt: skip
    assert printed.strip() == type(encoder.backbone).__name__
    with torch.no_grad():
        torch.testing.assert_close(load_file(tmp_path / "out.safetensors")["pooled"], encoder(views).pooler_output)

    # Linear evaluation and the kNN monitor run on it.
    if name == "ast":
        evaluation = [
            "--domain", "audio", "--train_file", str(tmp_path / "train.parquet"), "--validation_file",
            str(tmp_path / "validation.parquet"), "--label_column_name", "speaker_id",
        ]  # fmt: skip
    else:
        evaluation = ["--config", str(REPO_ROOT / "training" / "configs" / "eval_quickstart.yaml")]
    argv = [*evaluation, *EVALUATION, "--model_name_or_path", str(run)]
    run_in_process(linear_eval.main, [*argv, "--output_dir", str(tmp_path / "probe")])
    probe = json.loads((tmp_path / "probe" / "eval_results.json").read_text())
    assert 0.0 <= probe["top1_accuracy"] <= 1.0 and probe["feature_dim"] == encoder.head.in_features
    assert {"linear_head.safetensors", "linear_head.json"} <= set(collect_run_files(tmp_path / "probe"))
    run_in_process(linear_eval.main, [*argv, "--knn_only", "true", "--knn_k", "3", "--output_dir", str(tmp_path / "k")])
    assert 0.0 <= json.loads((tmp_path / "k" / "eval_results.json").read_text())["knn_accuracy"] <= 1.0


def test_sensor_spectrograms_through_a_backbone(tmp_path):
    write_ts_file(tmp_path / "train.ts")
    write_ts_file(tmp_path / "test.ts", series_per_class=2, seed=1)
    ConvNextConfig(num_channels=3, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2).save_pretrained(tmp_path / "b")
    run = tmp_path / "run"
    sensor = [
        "--domain", "sensor", "--train_file", str(tmp_path / "train.ts"), "--validation_file", str(tmp_path / "test.ts"),
        "--num_channels", "3", "--n_fft", "15", "--hop_length", "4", "--clamp_views", "false",
        "--per_device_train_batch_size", "4", "--knn_k", "3",
    ]  # fmt: skip
    run_in_process(
        pretrain.main, [*sensor, *COMMON, "--encoder_config_name", str(tmp_path / "b"), "--output_dir", str(run)]
    )
    assert json.loads((run / "train_results.json").read_text())["completed_steps"] == 2
    assert json.loads((run / "encoder" / "config.json").read_text())["architectures"] == ["ConvNextModel"]


def _model_arguments(**kwargs) -> ModelArguments:
    return ModelArguments(embedding_dim=8, num_res_blocks=1, **kwargs)


def test_pretraining_continues_from_a_run_and_keeps_a_published_viewmaker_fixed(tmp_path):
    BACKBONES["vit"].save_pretrained(tmp_path / "backbone")
    first = tmp_path / "first"
    run_in_process(
        pretrain.main,
        [*IMAGES, *COMMON, "--encoder_config_name", str(tmp_path / "backbone"), "--output_dir", str(first)],
    )
    # --encoder_name_or_path starts from the run's encoder and its projection head, --viewmaker_name_or_path from
    # its viewmaker.
    model = _model_arguments(encoder_name_or_path=str(first), viewmaker_name_or_path=str(first))
    config = build_pretraining_config(model, ObjectiveArguments(), ViewArguments(), 1, 16, num_examples=64)
    built = build_pretraining_model(config, encoder_name_or_path=str(first), viewmaker_name_or_path=str(first))
    saved = BackboneWithProjection.from_pretrained(first / "encoder")
    for key, value in saved.state_dict().items():
        assert torch.equal(built.encoder.state_dict()[key], value), key
    viewmaker = ViewmakerModel.from_pretrained(first / "viewmaker")
    for key, value in viewmaker.state_dict().items():
        assert torch.equal(built.viewmaker.state_dict()[key], value), key

    second = tmp_path / "second"
    flags = [
        "--encoder_name_or_path",
        str(first),
        "--viewmaker_name_or_path",
        str(first),
        "--viewmaker_freeze_epoch",
        "0",
    ]
    run_in_process(pretrain.main, [*IMAGES, *COMMON, *flags, "--output_dir", str(second)])
    kept = ViewmakerModel.from_pretrained(second / "viewmaker")
    for key, value in viewmaker.state_dict().items():
        assert torch.equal(kept.state_dict()[key], value), key  # a fixed, learned augmentation
    trained = BackboneWithProjection.from_pretrained(second / "encoder").state_dict()
    assert any(not torch.equal(trained[key], value) for key, value in saved.state_dict().items())


def test_a_backbone_on_the_command_line_replaces_the_recipes_resnet(tmp_path):
    BACKBONES["vit"].save_pretrained(tmp_path / "backbone")
    run = pretrain.parse_args([*IMAGES, "--encoder_config_name", str(tmp_path / "backbone")])
    # quickstart.yaml's ResNet sizes are dropped, not combined with the ViT.
    assert run.model.encoder_depths is None and run.model.encoder_hidden_sizes is None and run.model.uses_backbone


def test_a_backbone_that_does_not_fit_the_inputs_is_a_clear_error(tmp_path, capsys):
    ViTConfig(image_size=16, patch_size=4, num_channels=3).save_pretrained(tmp_path / "rgb")
    with pytest.raises(SystemExit):
        pretrain.parse_args([*IMAGES, "--encoder_config_name", str(tmp_path / "rgb")])
    assert "num_channels=3, but the inputs have 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pretrain.parse_args([*IMAGES, "--encoder_config_name", str(tmp_path / "rgb"), "--encoder_name_or_path", "x"])
    assert "give one encoder" in capsys.readouterr().err


def test_the_encoder_learning_rate_warms_up_then_follows_its_schedule():
    assert [learning_rate_at(step, 10, 1.0, "constant", 2) for step in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 1.0]
    cosine = [learning_rate_at(step, 10, 1.0, "cosine", 2) for step in range(10)]
    assert cosine[:2] == [0.5, 1.0] and cosine[2] == 1.0 and all(a > b for a, b in itertools.pairwise(cosine[2:]))
    assert learning_rate_at(10, 10, 1.0, "cosine", 2) == pytest.approx(0.0)


def test_backbone_inputs_are_checked_by_what_the_backbone_does(tmp_path):
    from transformers import ResNetConfig, ViTMAEConfig

    from hf_viewmaker.models.pretraining.backbone_encoder import check_backbone_inputs

    check_backbone_inputs(BACKBONES["swin"], 1, 32)  # Swin pads: another size than its image_size is fine
    with pytest.raises(ValueError, match="ViTConfig cannot encode 1 x 32 x 32 inputs"):
        check_backbone_inputs(BACKBONES["vit"], 1, 32)
    mae = ViTMAEConfig(image_size=16, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32)  # fmt: skip
    with pytest.raises(ValueError, match="masks 75% of its input"):
        check_backbone_inputs(mae, 1, 16)
    # transformers' ResNet pools to [batch, channels, 1, 1]: flattened for the head.
    resnet = BackboneWithProjection.from_config(
        ResNetConfig(num_channels=1, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]), embedding_dim=4
    )
    assert resnet(torch.rand(2, 1, 16, 16)).embeddings.shape == (2, 4)
    # A half-precision checkpoint trains in float32, like its float32 head.
    from transformers import AutoModel

    AutoModel.from_config(BACKBONES["vit"]).to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    loaded = BackboneWithProjection.from_pretrained(tmp_path / "bf16")
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}


def test_a_decaying_schedule_refuses_a_resume_of_another_length():
    from hf_viewmaker.arguments import OptimizationArguments, PretrainingArguments, PretrainingRun

    def run(schedule: str, max_steps: int) -> PretrainingRun:
        return PretrainingRun(
            optimization=OptimizationArguments(lr_scheduler_type=schedule),
            training=PretrainingArguments(max_steps=max_steps),
        )

    assert any(
        "max_steps 3 -> 6 (the cosine schedule's length)" in c for c in run("cosine", 6).changes_from(run("cosine", 3))
    )
    assert run("constant", 6).changes_from(run("constant", 3)) == []


def test_a_backbone_of_the_wrong_image_size_is_refused_before_any_data_is_read(tmp_path, capsys):
    ViTConfig(image_size=32, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
              intermediate_size=32).save_pretrained(tmp_path / "vit32")  # fmt: skip
    with pytest.raises(SystemExit):
        pretrain.parse_args([*IMAGES, "--encoder_config_name", str(tmp_path / "vit32")])  # 16 x 16 images
    assert "ViTConfig cannot encode 1 x 16 x 16 inputs" in capsys.readouterr().err
