import json

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file

from hf_viewmaker import (
    ContrastiveResNetConfig,
    ContrastiveResNetModel,
    LogMelFeatureExtractor,
    SensorSpectrogramProcessor,
    ViewmakerConfig,
    ViewmakerImageProcessor,
    ViewmakerModel,
)
from hf_viewmaker.hub import build_model_card, write_model_card
from hf_viewmaker.hub.model_card import model_size

from helpers import RUN_A_CARD_SNIPPET, card_snippet, run_python

ARGS = {
    "domain": "image",
    "dataset_name": "uoft-cs/cifar10",
    "train_split": "train",
    "validation_split": "test",
    "view_mode": "viewmaker",
    "expert_views": "none",
    "objective": "simclr",
    "simclr_variant": "nt_xent",
    "temperature": 0.07,
    "num_channels": 3,
    "image_size": 32,
    "encoder_preset": "resnet18_cifar",
    "embedding_dim": 128,
    "projection_head": "linear",
    "per_device_train_batch_size": 256,
    "learning_rate": 0.03,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "adversarial_update": "one_pass",
    "seed": 2,
    "distortion_budget": 0.05,
    "budget_norm": "l1",
    "viewmaker_learning_rate": 0.001,
    "knn_k": 200,
}
TRAIN = {
    "completed_steps": 39000,
    "train_runtime_seconds": 1800.0,
    "knn_accuracy": 0.81234,
    "hardware": "1 x H100",
    "framework_versions": {"transformers": "5.24.0", "torch": "2.13.0"},
}
TINY_ENCODER = dict(stem_channels=8, depths=[1, 1], hidden_sizes=[8, 16], embedding_dim=8, image_size=32)


@pytest.fixture
def run(tmp_path):
    """A run folder as pretraining leaves it, with the models' configs and processors (the card needs no weights)."""
    ViewmakerConfig(num_channels=3, num_res_blocks=1).save_pretrained(tmp_path / "viewmaker")
    ContrastiveResNetConfig(**TINY_ENCODER, architectures=["ContrastiveResNetModel"]).save_pretrained(
        tmp_path / "encoder"
    )
    ViewmakerImageProcessor().save_pretrained(tmp_path / "viewmaker")
    ViewmakerImageProcessor(do_normalize=True).save_pretrained(tmp_path / "encoder")
    (tmp_path / "training_args.json").write_text(json.dumps(ARGS))
    (tmp_path / "train_results.json").write_text(json.dumps(TRAIN))
    return tmp_path


def test_card_reports_only_measured_numbers(run, tmp_path):
    evaluation = tmp_path / "probe" / "eval_results.json"
    evaluation.parent.mkdir()
    evaluation.write_text(
        json.dumps(
            {
                "dataset": "uoft-cs/cifar10",
                "split": "test",
                "features": "prepool",
                "top1_accuracy": 0.7,
                "top5_accuracy": 0.95,
                "cifar10c": {"mean_accuracy": 0.55},
            }
        )
    )
    card = build_model_card(run, repo_id="me/c10-viewmaker", eval_results=[evaluation])
    assert card.data.pipeline_tag == "image-feature-extraction" and card.data.library_name == "transformers"
    values = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert values == {
        "kNN monitor (k=200): accuracy": 0.8123,
        "linear probe (prepool features): top-1 accuracy": 0.7,
        "linear probe (prepool features): top-5 accuracy": 0.95,
        "linear probe (prepool features): mean accuracy": 0.55,
    }
    assert 'AutoModel.from_pretrained("me/c10-viewmaker", subfolder="viewmaker"' in card.text
    assert 'AutoModel.from_pretrained("me/c10-viewmaker", trust_remote_code=True)' in card.text  # the root
    assert "| hardware | 1 x H100 |" in card.text and "| distortion budget | 0.05 (l1) |" in card.text
    assert (
        "| viewmaker objective | adversarial |" in card.text
        and "| viewmaker input | the encoder's input |" in card.text
    )
    assert "{{" not in card.text and "views.png" not in card.text  # no picture in this run


def test_card_states_sizes_preprocessing_and_versions(run):
    card = build_model_card(run, repo_id="me/run").text
    parameters, flops = model_size(run / "encoder", (3, 32, 32))
    assert 0 < parameters < 20_000 and flops > 2 * parameters  # each weight of a conv is used at many positions
    assert f"{parameters:,} parameters, {flops / 1e6:,.1f} MFLOPs per example" in card
    assert "normalised per channel with mean [0.491, 0.482, 0.446]" in card  # the encoder's processor
    assert "resized to 32 x 32, scaled to [0, 1]; not normalised" in card  # the viewmaker's
    assert "- transformers 5.24.0\n- torch 2.13.0" in card


def test_a_local_card_loads_the_local_folders(run):
    text = build_model_card(run).text
    assert f'AutoModel.from_pretrained("{run / "encoder"}", trust_remote_code=True)' in text
    assert f'AutoModel.from_pretrained("{run / "viewmaker"}", trust_remote_code=True)' in text


def test_card_without_evaluations_says_so(run):
    written = write_model_card(run, repo_id="me/run")
    card = ModelCard.load(written)
    assert card.data.eval_results[0].metric_value == 0.8123
    (run / "train_results.json").write_text(json.dumps({**TRAIN, "knn_accuracy": None}))
    assert "No evaluation was recorded for this run." in build_model_card(run).text


def test_unfinished_runs_and_missing_evaluations_are_named(run, tmp_path):
    with pytest.raises(FileNotFoundError, match="eval_results.json"):
        build_model_card(run, eval_results=[tmp_path / "nope" / "eval_results.json"])
    (run / "train_results.json").unlink()
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        build_model_card(run)


def test_card_reports_knn_evaluations(run, tmp_path):
    evaluation = tmp_path / "knn.json"
    evaluation.write_text(json.dumps({"knn_accuracy": 0.5, "knn_k": 20, "knn_features": "embeddings", "split": "test"}))
    values = {r.metric_name: r.metric_value for r in build_model_card(run, eval_results=[evaluation]).data.eval_results}
    assert values["kNN (k=20, embeddings): accuracy"] == 0.5


@pytest.mark.parametrize(
    "domain,backbone", [("audio", None), ("sensor", None), ("audio", "ast"), ("sensor", "convnext")]
)
def test_the_usage_snippet_runs_with_and_without_the_package(tmp_path, domain, backbone):
    """The speech and sensor cards' "How to use" code (the image card's is run from the Hub in test_hub_push.py):
    processor, encoder and viewmaker from the folders, `model(**processor(raw))`; with the paper's ResNet or a
    transformers backbone (an AST reads the log-mels transposed)."""
    from transformers import ASTConfig, ConvNextConfig

    from hf_viewmaker.models.pretraining.backbone_encoder import BackboneWithProjection

    channels = 1 if domain == "audio" else 3
    if backbone == "ast":
        config = ASTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                           num_mel_bins=32, max_length=32, patch_size=8, frequency_stride=8, time_stride=8)  # fmt: skip
        encoder = BackboneWithProjection.from_config(config).eval()
    elif backbone == "convnext":
        config = ConvNextConfig(num_channels=3, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2)
        encoder = BackboneWithProjection.from_config(config).eval()
    else:
        encoder = ContrastiveResNetModel(ContrastiveResNetConfig(**{**TINY_ENCODER, "num_channels": channels})).eval()
    viewmaker = ViewmakerModel(ViewmakerConfig(num_channels=channels, num_res_blocks=1, clamp=False)).eval()
    if domain == "audio":
        processor = LogMelFeatureExtractor(size=32)
    else:
        processor = SensorSpectrogramProcessor(num_channels=3, channel_means=[0.0] * 3, channel_stds=[1.0] * 3)
    for part, model in (("encoder", encoder), ("viewmaker", viewmaker)):
        model.save_pretrained(tmp_path / "run" / part)
        processor.save_pretrained(tmp_path / "run" / part)
    args = {**ARGS, "domain": domain, "dataset_name": None, "num_channels": channels}
    if backbone:
        args["encoder_config_name"] = f"tiny-{backbone}"
    (tmp_path / "run" / "training_args.json").write_text(json.dumps(args))
    (tmp_path / "run" / "train_results.json").write_text(json.dumps(TRAIN))

    card = build_model_card(tmp_path / "run")
    assert card.data.pipeline_tag == "feature-extraction"
    assert (f"tiny-{backbone}" in card.text) == bool(backbone)
    snippet = card_snippet(card.text)
    (tmp_path / "snippet.py").write_text(snippet)
    outputs = []
    for with_package in (False, True):
        env = {"HF_MODULES_CACHE": str(tmp_path / f"modules_{with_package}")}
        out = tmp_path / f"out_{with_package}.safetensors"
        run_python(RUN_A_CARD_SNIPPET, tmp_path / "snippet.py", out, cwd=tmp_path, env=env, with_package=with_package)
        outputs.append(load_file(out))
    torch.manual_seed(0)
    scope = {}
    exec(snippet, scope)  # here, with the package: the same numbers
    for remote in outputs:
        torch.testing.assert_close(remote["features"], scope["features"], rtol=0, atol=0)
        assert remote["views"].shape == scope["views"].shape


@pytest.mark.parametrize("kind", ["audio", "sensor", "backbone"])
def test_a_probes_usage_snippet_runs(tmp_path, kind):
    """The linear-probe card's "How to use" code, for speech and sensor probes and a probe on a transformers
    backbone, run against the folder (the image probe's runs from the Hub in test_hub_push.py)."""
    from transformers import ViTConfig

    from hf_viewmaker import ContrastiveResNetForClassification
    from hf_viewmaker.evaluation.linear_probe import BackboneLinearProbe
    from hf_viewmaker.models.pretraining.backbone_encoder import BackboneWithProjection

    channels = 3 if kind == "sensor" else 1
    if kind == "backbone":
        vit = ViTConfig(image_size=16, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32)  # fmt: skip
        BackboneLinearProbe(BackboneWithProjection.from_config(vit), 3).save_pretrained(tmp_path / "probe")
    else:
        config = ContrastiveResNetConfig(**{**TINY_ENCODER, "num_channels": channels}, num_labels=3)
        ContrastiveResNetForClassification(config).save_pretrained(tmp_path / "probe")
    if kind == "sensor":
        SensorSpectrogramProcessor(num_channels=3, channel_means=[0.0] * 3, channel_stds=[1.0] * 3).save_pretrained(
            tmp_path / "probe"
        )
    else:
        LogMelFeatureExtractor(size=32).save_pretrained(tmp_path / "probe")
    domain = "sensor" if kind == "sensor" else "audio"
    (tmp_path / "probe" / "eval_args.json").write_text(json.dumps({"domain": domain, "train_split": "train"}))
    result = {"domain": domain, "features": "pooled", "feature_dim": 16, "num_labels": 3, "top1_accuracy": 0.5,
              "input_shape": [channels, 16, 16], "split": "test", "dataset": "some/data"}  # fmt: skip
    (tmp_path / "probe" / "eval_results.json").write_text(json.dumps(result))
    card = build_model_card(tmp_path / "probe", repo_id=None)
    snippet = card_snippet(card.text)
    scope = {}
    exec(snippet, scope)
    assert scope["labels"].shape == (8,) and int(scope["labels"].max()) < 3
