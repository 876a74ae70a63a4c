import ast
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from hf_viewmaker.models.encoder import (
    ContrastiveResNetConfig,
    ContrastiveResNetForClassification,
    ContrastiveResNetModel,
    ContrastiveResNetOutput,
    modeling_encoder,
)

from helpers import randomise_batch_norms

# Small enough that every test except the real-size ones builds and runs in milliseconds.
TINY = dict(stem_channels=8, hidden_sizes=[8, 16], depths=[1, 1], embedding_dim=4)


def test_loads_torchvision_resnet18_key_for_key(fixtures_dir):
    tensors = load_file(fixtures_dir / "torchvision_resnet" / "torchvision_resnet18_1ch.safetensors")
    prefix = "state_dict."
    state_dict = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    model = ContrastiveResNetModel(ContrastiveResNetConfig.resnet18_audio()).eval()
    model.load_state_dict(state_dict, strict=True)

    with torch.no_grad():
        out = model(tensors["input"])
    # The pre-pool map reaches ~30 (randomised BatchNorm statistics), so float32 rounding alone moves it by ~4e-5
    # (float64 lands as far from the vectors): the tolerance is 1e-5 of each tensor's largest magnitude.
    for name, value in (("expected_embeddings", out.embeddings), ("expected_prepool", out.last_hidden_state)):
        expected = tensors[name]
        assert value.shape == expected.shape
        assert (value - expected).abs().max() <= 1e-5 * expected.abs().max(), name


@pytest.mark.parametrize(
    "config,expected",
    [
        # docs/method.md §2: resnet_small with the 128-d fc, and with a 52-channel conv1 (Pamap2).
        (ContrastiveResNetConfig.resnet18_cifar(), 11_234_496),
        (ContrastiveResNetConfig.resnet18_cifar(num_channels=52), 11_262_720),
        # docs/method.md §2: the exact counts of torchvision's ResNet-18 (num_classes=128) and ResNet-50 + MLP head
        # with a 1-channel conv1.
        (ContrastiveResNetConfig.resnet18_audio(), 11_235_904),
        (ContrastiveResNetConfig.resnet50_audio(), 27_960_384),
    ],
)
def test_parameter_counts_match_the_original_encoders(config, expected):
    count = sum(p.numel() for p in ContrastiveResNetModel(config).parameters())
    assert count == expected
    if config.block_type == "bottleneck":
        assert 27_955_000 <= count <= 27_965_000


@pytest.mark.parametrize(
    "config,input_shape,prepool_shape",
    [
        (ContrastiveResNetConfig.resnet18_cifar(), (2, 3, 32, 32), (512, 4, 4)),
        (ContrastiveResNetConfig.resnet18_audio(), (2, 1, 64, 64), (512, 2, 2)),
        (ContrastiveResNetConfig.resnet50_audio(), (1, 1, 112, 112), (2048, 4, 4)),
    ],
)
def test_output_shapes_of_the_paper_encoders(config, input_shape, prepool_shape):
    model = ContrastiveResNetModel(config).eval()
    with torch.no_grad():
        out = model(torch.randn(input_shape), output_hidden_states=True)
    assert isinstance(out, ContrastiveResNetOutput)
    batch = input_shape[0]
    assert out.last_hidden_state.shape == (batch, *prepool_shape)
    assert out.pooler_output.shape == (batch, prepool_shape[0])
    assert out.embeddings.shape == (batch, 128)
    assert len(out.hidden_states) == 1 + len(config.depths)
    assert out.hidden_states[-1] is out.last_hidden_state
    assert (config.num_features, *config.feature_map_size) == prepool_shape


def test_pooler_output_is_the_spatial_mean_and_embeddings_its_projection():
    model = ContrastiveResNetModel(ContrastiveResNetConfig(**TINY)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 16, 16))
        torch.testing.assert_close(out.pooler_output, out.last_hidden_state.mean(dim=(2, 3)))
        torch.testing.assert_close(out.embeddings, model.fc(out.pooler_output))


def test_tuple_output_order():
    model = ContrastiveResNetModel(ContrastiveResNetConfig(**TINY)).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        out = model(x)
        last, pooled, embeddings = model(x, return_dict=False)
    for a, b in ((last, out.last_hidden_state), (pooled, out.pooler_output), (embeddings, out.embeddings)):
        torch.testing.assert_close(a, b)


def test_resnet50_state_dict_follows_torchvision_names():
    keys = set(ContrastiveResNetModel(ContrastiveResNetConfig.resnet50_audio()).state_dict())
    for key in (
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.num_batches_tracked",
        "layer1.2.conv3.weight",
        "layer4.2.bn3.running_var",
        "fc.0.weight",
        "fc.0.bias",
        "fc.2.weight",
        "fc.2.bias",
    ):
        assert key in keys
    pattern = re.compile(
        r"(conv1\.weight|bn1\.\w+|layer[1-4]\.\d+\.(conv[1-3]\.weight|bn[1-3]\.\w+|downsample\.[01]\.\w+)"
        r"|fc\.[02]\.(weight|bias))"
    )
    assert all(pattern.fullmatch(k) for k in keys), sorted(k for k in keys if not pattern.fullmatch(k))
    # torchvision's ResNet-50 state dict has 320 entries; the MLP head adds one Linear (2 more).
    assert len(keys) == 322
    # Only the first block of each stage changes the shape.
    assert not any(k.startswith("layer1.1.downsample") for k in keys)


@pytest.mark.parametrize("initializer", ["pytorch_default", "kaiming_normal"])
def test_configured_init_replaces_transformers_default(initializer):
    # fan_in = fan_out = 16 * 3 * 3 puts both expected stds far from 0.02; 2,304 weights estimate them within ~2 %.
    config = ContrastiveResNetConfig(initializer=initializer, stem_channels=16, hidden_sizes=[16, 32], depths=[1, 1])
    torch.manual_seed(0)
    model = ContrastiveResNetModel(config)
    weight = model.layer1[0].conv1.weight
    fan_in = weight[0].numel()
    fan_out = weight.shape[0] * weight[0, 0].numel()
    if initializer == "pytorch_default":
        # kaiming_uniform_(a=sqrt(5)): U(-b, b) with b = 1/sqrt(fan_in), so std = 1/sqrt(3 fan_in).
        expected = 1 / math.sqrt(3 * fan_in)
    else:
        expected = math.sqrt(2 / fan_out)
    assert weight.std().item() == pytest.approx(expected, rel=0.05)
    assert abs(weight.std().item() - 0.02) > 0.2 * expected
    # Linear layers keep PyTorch's default under both schemes, as in torchvision.
    assert model.fc.weight.abs().max().item() <= 1 / math.sqrt(model.fc.in_features)
    assert model.fc.bias.abs().max().item() > 0
    assert torch.equal(model.bn1.weight, torch.ones(16)) and torch.equal(model.bn1.bias, torch.zeros(16))


def test_save_and_load_round_trip(tmp_path):
    config = ContrastiveResNetConfig(**TINY, block_type="bottleneck", projection_head="mlp", stem="imagenet")
    model = ContrastiveResNetModel(config).eval()
    randomise_batch_norms(model)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()

    loaded = ContrastiveResNetModel.from_pretrained(tmp_path).eval()
    assert {**loaded.config.to_dict(), "_name_or_path": ""} == config.to_dict()
    expected, actual = model.state_dict(), loaded.state_dict()
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x).embeddings, loaded(x).embeddings)


def test_loading_keeps_batch_norm_statistics_of_a_partial_checkpoint(tmp_path):
    # A checkpoint without `num_batches_tracked` (older PyTorch, converted weights) leaves each BatchNorm partly
    # loaded, so transformers runs `_init_weights` on it: the loaded statistics must survive that.
    model = ContrastiveResNetModel(ContrastiveResNetConfig(**TINY))
    randomise_batch_norms(model)
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    save_file(
        {k: v for k, v in weights.items() if not k.endswith("num_batches_tracked")},
        tmp_path / "model.safetensors",
        metadata={"format": "pt"},
    )
    loaded = ContrastiveResNetModel.from_pretrained(tmp_path)
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, loaded.state_dict()[key]), key


def test_classifier_loads_a_pretrained_encoder(tmp_path):
    encoder = ContrastiveResNetModel(ContrastiveResNetConfig(**TINY))
    randomise_batch_norms(encoder)
    encoder.save_pretrained(tmp_path)
    classifier = ContrastiveResNetForClassification.from_pretrained(tmp_path, num_labels=5)
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, classifier.resnet.state_dict()[key]), key
    # The new head gets PyTorch's default init, not normal(0, 0.02) or zeros.
    bound = 1 / math.sqrt(classifier.classifier.in_features)
    assert classifier.classifier.weight.abs().max().item() <= bound
    assert classifier.classifier.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.2)


@pytest.mark.parametrize(
    "config,feature_dim",
    [
        # docs/method.md §5: CIFAR-10 512x4x4, ResNet-18 audio 512x2x2, ResNet-50 audio 2048x4x4, Pamap2 pooled 512.
        (ContrastiveResNetConfig.resnet18_cifar(classifier_features="prepool"), 8_192),
        (ContrastiveResNetConfig.resnet18_audio(), 2_048),
        (ContrastiveResNetConfig.resnet50_audio(), 32_768),
        (ContrastiveResNetConfig.resnet18_cifar(num_channels=52), 512),
    ],
)
def test_linear_evaluation_feature_sizes(config, feature_dim):
    height, width = config.feature_map_size
    prepool = config.classifier_features == "prepool"
    assert (config.num_features * height * width if prepool else config.num_features) == feature_dim


@pytest.mark.parametrize(
    "kwargs,input_shape,feature_dim",
    [
        (dict(classifier_features="pooled"), (2, 3, 16, 16), 16),
        (dict(classifier_features="prepool", image_size=16), (2, 3, 16, 16), 16 * 8 * 8),
        (dict(classifier_features="prepool", image_size=[20, 12], stem="imagenet"), (2, 3, 20, 12), 16 * 3 * 2),
    ],
)
def test_classifier_features(kwargs, input_shape, feature_dim):
    model = ContrastiveResNetForClassification(ContrastiveResNetConfig(**TINY, **kwargs, num_labels=3)).eval()
    assert model.classifier.in_features == feature_dim
    labels = torch.tensor([0, 2])
    out = model(torch.randn(input_shape), labels=labels, output_hidden_states=True)
    assert out.logits.shape == (2, 3)
    assert len(out.hidden_states) == 3
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))
    out.loss.backward()
    assert model.classifier.weight.grad is not None


def test_classifier_regression_and_multi_label_losses():
    model = ContrastiveResNetForClassification(ContrastiveResNetConfig(**TINY, num_labels=1)).eval()
    targets = torch.randn(2)
    out = model(torch.randn(2, 3, 16, 16), labels=targets)
    torch.testing.assert_close(out.loss, F.mse_loss(out.logits.squeeze(), targets))

    config = ContrastiveResNetConfig(**TINY, num_labels=3, problem_type="multi_label_classification")
    model = ContrastiveResNetForClassification(config).eval()
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    out = model(torch.randn(2, 3, 16, 16), labels=targets)
    torch.testing.assert_close(out.loss, F.binary_cross_entropy_with_logits(out.logits, targets))


def test_classifier_tuple_output():
    model = ContrastiveResNetForClassification(ContrastiveResNetConfig(**TINY, num_labels=3)).eval()
    x, labels = torch.randn(2, 3, 16, 16), torch.tensor([0, 1])
    with torch.no_grad():
        loss, logits = model(x, labels=labels, return_dict=False)
        (logits_only,) = model(x, return_dict=False)
    torch.testing.assert_close(logits, logits_only)
    assert loss.ndim == 0


def test_prepool_classifier_rejects_another_input_size():
    config = ContrastiveResNetConfig(**TINY, classifier_features="prepool", image_size=16, num_labels=3)
    model = ContrastiveResNetForClassification(config)
    with pytest.raises(ValueError, match=r"\(2, 3, 24, 24\).*\(16, 12, 12\).*\(16, 8, 8\).*image_size=16"):
        model(torch.randn(2, 3, 24, 24))


@pytest.mark.parametrize(
    "shape,message",
    [
        ((3, 16, 16), r"\(3, 16, 16\)"),
        ((2, 1, 3, 16, 16), r"\(2, 1, 3, 16, 16\)"),
        ((2, 1, 16, 16), r"1 channels \(shape \(2, 1, 16, 16\)\).*num_channels=3"),
    ],
)
def test_bad_input_shapes_are_named(shape, message):
    model = ContrastiveResNetModel(ContrastiveResNetConfig(**TINY))
    with pytest.raises(ValueError, match=message):
        model(torch.randn(shape))


@pytest.mark.parametrize("bad_value", [float("nan"), float("inf")])
def test_non_finite_input_is_rejected(bad_value):
    model = ContrastiveResNetModel(ContrastiveResNetConfig(**TINY))
    x = torch.randn(2, 3, 16, 16)
    x[1, 0, 3, 3] = bad_value
    with pytest.raises(ValueError, match=r"\(2, 3, 16, 16\) contains NaN or inf"):
        model(x)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(num_channels=0), "num_channels"),
        (dict(stem_channels=-1), "stem_channels"),
        (dict(embedding_dim=0), "embedding_dim"),
        (dict(stem="resnet"), "stem"),
        (dict(block_type="preact"), "block_type"),
        (dict(projection_head="none"), "projection_head"),
        (dict(initializer="xavier"), "initializer"),
        (dict(classifier_features="pool"), "classifier_features"),
        (dict(depths=[2, 2, 2]), "depths and hidden_sizes"),
        (dict(depths=[2, 0, 2, 2]), "depths"),
        (dict(hidden_sizes=[]), "hidden_sizes"),
        (dict(image_size=0), "image_size"),
        (dict(image_size=[32, 32, 32]), "image_size"),
    ],
)
def test_invalid_config_values_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field} "):
        ContrastiveResNetConfig(**kwargs)


def test_presets_and_serialised_lists():
    audio = ContrastiveResNetConfig.resnet50_audio(embedding_dim=64)
    fields = (audio.num_channels, audio.stem, audio.block_type, audio.projection_head, audio.initializer)
    assert fields == (1, "imagenet", "bottleneck", "mlp", "kaiming_normal")
    assert audio.embedding_dim == 64 and audio.image_size == 112
    config = ContrastiveResNetConfig(depths=(1, 1), hidden_sizes=(8, 8), image_size=(16, 24))
    assert config.depths == [1, 1] and config.image_size == [16, 24]
    assert ContrastiveResNetConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()


def test_modeling_and_configuration_are_self_contained():
    # Both files are copied next to the weights for `trust_remote_code=True`, where hf_viewmaker is not installed.
    allowed = {"torch", "transformers", "huggingface_hub", "math", "dataclasses", "typing"}
    folder = Path(modeling_encoder.__file__).parent
    for name in ("modeling_encoder.py", "configuration_encoder.py"):
        tree = ast.parse((folder / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.module == "configuration_encoder", (name, node.module)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                assert all(m.split(".")[0] in allowed for m in modules), (name, modules)


def test_inputs_come_as_pixel_values_or_input_features_but_not_both():
    model = ContrastiveResNetModel(ContrastiveResNetConfig(depths=[1], hidden_sizes=[8], stem_channels=8)).eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(input_features=x).embeddings, model(pixel_values=x).embeddings)
    for kwargs in ({}, {"pixel_values": x, "input_features": x}):
        with pytest.raises(ValueError, match="one of pixel_values .* or input_features"):
            model(**kwargs)


def test_the_encoder_as_a_transformers_backbone(tmp_path):
    """`ContrastiveResNetBackbone` loads a saved encoder and returns the maps `out_features` names; `AutoBackbone`
    builds it from a config, so it can be the `backbone_config` of a transformers segmentation model."""
    from transformers import AutoBackbone, UperNetConfig, UperNetForSemanticSegmentation

    from hf_viewmaker import ContrastiveResNetBackbone

    config = ContrastiveResNetConfig(depths=[1, 1], hidden_sizes=[8, 16], stem_channels=8)
    encoder = ContrastiveResNetModel(config).eval()
    encoder.save_pretrained(tmp_path)
    backbone, loading = ContrastiveResNetBackbone.from_pretrained(
        tmp_path, out_features=["stage1", "stage2"], output_loading_info=True
    )
    assert loading["missing_keys"] == set() and backbone.channels == [8, 16]
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        maps = backbone.eval()(x).feature_maps
        hidden = encoder(x, output_hidden_states=True).hidden_states
    assert len(maps) == 2 and torch.equal(maps[0], hidden[1]) and torch.equal(maps[1], hidden[2])
    assert ContrastiveResNetConfig.from_pretrained(tmp_path).out_features == ["stage2"]  # the default: the last stage

    assert isinstance(AutoBackbone.from_config(config), ContrastiveResNetBackbone)
    backbone_config = ContrastiveResNetConfig(depths=[1, 1], hidden_sizes=[8, 16], stem_channels=8,
                                              out_features=["stage1", "stage2"])  # fmt: skip
    segmenter = UperNetForSemanticSegmentation(
        UperNetConfig(backbone_config=backbone_config, hidden_size=16, use_auxiliary_head=False, num_labels=3)
    )
    assert segmenter(torch.rand(2, 3, 32, 32)).logits.shape == (2, 3, 32, 32)
