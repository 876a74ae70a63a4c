"""Converting checkpoints of the authors' original code (PyTorch Lightning 0.9 files)."""

import hashlib
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from torch import nn
from transformers import AutoImageProcessor, AutoModel

from hf_viewmaker import ContrastiveResNetModel, ViewmakerConfig, ViewmakerModel
from hf_viewmaker.convert_original_checkpoint import convert, main
from hf_viewmaker.hub import build_model_card, push_run_to_hub

from helpers import hub_environment, randomise_batch_norms, run_python
from hub_server import HubServer, point_this_process_at

# The shipped CIFAR viewmaker config (docs/method.md §6), with `clamp_views` set so that the fixture's clamped views
# are the expected output.
CIFAR_CONFIG = {
    "exp_name": "pretrain_viewmaker_cifar_simclr",
    "system": "PretrainViewMakerSystem",
    "data_params": {"dataset": "cifar10"},
    "model_params": {
        "out_dim": 128,
        "resnet": True,
        "resnet_version": "resnet18",
        "resnet_small": True,
        "projection_head": False,
        "noise_dim": 100,
        "view_bound_magnitude": 0.05,
        "num_res_blocks": 3,
        "clamp_views": True,
    },
    "loss_params": {"objective": "AdversarialSimCLRLoss", "view_maker_loss_weight": 1, "t": 0.07},
}
AUDIO_CONFIG = {
    "exp_name": "pretrain_viewmaker_librispeech_simclr_L1_f_b0.1",
    "system": "PretrainViewMakerSimCLRSystem",
    "data_params": {"test_url": "train-clean-100", "small": True, "input_size": 64},
    "model_params": {
        "out_dim": 128,
        "resnet": True,
        "resnet_version": "resnet18",
        "resnet_small": False,
        "projection_head": False,
        "view_bound_magnitude": 0.1,
        "num_res_blocks": 2,
        "generator_activation": "leaky_relu",
    },
}


class ReferenceBlock(nn.Module):
    """The original `resnet_small` BasicBlock (docs/method.md §2), written from its description: two 3x3 convs with
    BN, and a `shortcut` (1x1 conv + BN) when the shape changes."""

    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ReferenceResNetSmall(nn.Module):
    """The original CIFAR ResNet-18: 3x3 stride-1 stem, no max-pool, `F.avg_pool2d(out, 4)`, `fc` to out_dim."""

    def __init__(self, num_channels, out_dim=128):
        super().__init__()
        self.conv1 = nn.Conv2d(num_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes, layers = 64, []
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(nn.Sequential(ReferenceBlock(in_planes, planes, stride), ReferenceBlock(planes, planes, 1)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.fc = nn.Linear(512, out_dim)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        prepool = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.fc(F.avg_pool2d(prepool, 4).flatten(1)), prepool


def _write_lightning_checkpoint(path, viewmaker_state, encoder_state, extra=None):
    state_dict = {f"viewmaker.{k}": v for k, v in viewmaker_state.items()}
    state_dict.update({f"model.{k}": v for k, v in encoder_state.items()})
    state_dict.update(extra or {})
    torch.save(
        {"epoch": 199, "global_step": 39000, "pytorch-lightning_version": "0.9.0", "state_dict": state_dict}, path
    )


def _original_viewmaker_state(fixtures_dir, name):
    tensors = load_file(fixtures_dir / "original_viewmaker" / f"{name}.safetensors")
    prefix = "state_dict."
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}, tensors


def test_cifar_checkpoint_reproduces_views_and_encoder(tmp_path, fixtures_dir):
    viewmaker_state, tensors = _original_viewmaker_state(fixtures_dir, "cifar_l1_clamp")
    torch.manual_seed(0)
    reference = ReferenceResNetSmall(num_channels=3)
    randomise_batch_norms(reference)
    reference.eval()
    _write_lightning_checkpoint(
        tmp_path / "epoch=199.ckpt",
        viewmaker_state,
        reference.state_dict(),
        extra={"memory_bank._bank": torch.randn(10, 128)},
    )
    (tmp_path / "config.json").write_text(json.dumps(CIFAR_CONFIG))

    main(
        [
            "--checkpoint",
            str(tmp_path / "epoch=199.ckpt"),
            "--original_config",
            str(tmp_path / "config.json"),
            "--output_dir",
            str(tmp_path / "converted"),
        ]
    )

    viewmaker = AutoModel.from_pretrained(tmp_path / "converted" / "viewmaker").eval()
    assert isinstance(viewmaker, ViewmakerModel)
    assert viewmaker.config.clamp and viewmaker.config.num_res_blocks == 3
    assert not hasattr(viewmaker, "res4"), "unused residual blocks of the original are dropped"
    torch.manual_seed(1234)
    torch.testing.assert_close(viewmaker(tensors["input"]).views, tensors["expected_views"], atol=1e-5, rtol=0)

    encoder = AutoModel.from_pretrained(tmp_path / "converted" / "encoder").eval()
    assert isinstance(encoder, ContrastiveResNetModel)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected_embeddings, expected_prepool = reference(x)
        out = encoder(x)
    torch.testing.assert_close(out.embeddings, expected_embeddings, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.last_hidden_state, expected_prepool, atol=1e-5, rtol=1e-5)


def test_as_shipped_cifar_config_keeps_views_unclamped(tmp_path, fixtures_dir):
    viewmaker_state, _ = _original_viewmaker_state(fixtures_dir, "cifar_l1_clamp")
    _write_lightning_checkpoint(tmp_path / "run.ckpt", viewmaker_state, ReferenceResNetSmall(3).state_dict())
    shipped = json.loads(json.dumps(CIFAR_CONFIG))
    del shipped["model_params"]["clamp_views"]
    (tmp_path / "config.json").write_text(json.dumps(shipped))
    viewmaker, _ = convert(tmp_path / "run.ckpt", tmp_path / "config.json", tmp_path / "out")
    assert viewmaker.config.clamp is False


def test_a_converted_checkpoint_records_its_source_and_gets_a_card(tmp_path, fixtures_dir):
    viewmaker_state, _ = _original_viewmaker_state(fixtures_dir, "cifar_l1_clamp")
    _write_lightning_checkpoint(tmp_path / "run.ckpt", viewmaker_state, ReferenceResNetSmall(3).state_dict())
    (tmp_path / "config.json").write_text(json.dumps(CIFAR_CONFIG))
    convert(tmp_path / "run.ckpt", tmp_path / "config.json", tmp_path / "out")
    record = json.loads((tmp_path / "out" / "conversion.json").read_text())
    assert record["checkpoint_sha256"] == hashlib.sha256((tmp_path / "run.ckpt").read_bytes()).hexdigest()
    assert record["domain"] == "image" and record["input_shape"] == [3, 32, 32]

    card = build_model_card(tmp_path / "out", repo_id="me/converted")
    assert "converted" in card.data.tags and card.data.eval_results is None  # nothing was measured here
    assert record["checkpoint_sha256"] in card.text and "11,234,496 parameters" in card.text  # ResNet-18
    assert 'AutoModel.from_pretrained("me/converted", subfolder="viewmaker", trust_remote_code=True)' in card.text
    assert "normalised per channel with mean [0.491, 0.482, 0.446]" in card.text  # CIFAR-10's, for the encoder


PIPELINE_FROM_THE_HUB = """
import json

import numpy as np
import torch
from PIL import Image
from transformers import pipeline

image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 36, 3), dtype=np.uint8))
extractor = pipeline("image-feature-extraction", model=sys.argv[1], trust_remote_code=True)
print(json.dumps(extractor(image, pool=True)))
"""


def test_a_converted_checkpoint_is_pushed_and_extracts_features_without_the_package(
    tmp_path, fixtures_dir, monkeypatch
):
    viewmaker_state, _ = _original_viewmaker_state(fixtures_dir, "cifar_l1_clamp")
    _write_lightning_checkpoint(tmp_path / "run.ckpt", viewmaker_state, ReferenceResNetSmall(3).state_dict())
    (tmp_path / "config.json").write_text(json.dumps(CIFAR_CONFIG))
    _, encoder = convert(tmp_path / "run.ckpt", tmp_path / "config.json", tmp_path / "out")
    with HubServer(tokens={"hf_converterToken0123456789abcdef": "me"}) as hub:
        point_this_process_at(hub, monkeypatch, tmp_path / "hf_home", "hf_converterToken0123456789abcdef")
        card = build_model_card(tmp_path / "out", repo_id="me/converted")
        push_run_to_hub(tmp_path / "out", "me/converted", model_card=str(card))
        assert {"conversion.json", "viewmaker/config.json", "preprocessor_config.json"} <= set(
            hub.files("me/converted")
        )
        env = hub_environment(hub.url, tmp_path / "fresh_hf_home")
        remote = json.loads(run_python(PIPELINE_FROM_THE_HUB, "me/converted", cwd=tmp_path, env=env))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 36, 3), dtype=np.uint8))
    with torch.no_grad():
        local = encoder(**AutoImageProcessor.from_pretrained(tmp_path / "out" / "encoder")(image, return_tensors="pt"))
    torch.testing.assert_close(torch.tensor(remote), local.pooler_output, rtol=0, atol=1e-6)


def test_sensor_checkpoint_with_52_channels(tmp_path):
    torch.manual_seed(0)
    # The original registers all 5 residual blocks whatever runs, while deconv1 takes 128 + num_res_blocks channels.
    state = ViewmakerModel(ViewmakerConfig(num_channels=52, num_res_blocks=5, clamp=False)).state_dict()
    three_blocks = ViewmakerModel(ViewmakerConfig(num_channels=52, clamp=False)).state_dict()
    state.update({k: v for k, v in three_blocks.items() if k.startswith("deconv1.")})
    reference = ReferenceResNetSmall(num_channels=52)
    randomise_batch_norms(reference)
    reference.eval()
    _write_lightning_checkpoint(tmp_path / "pamap.ckpt", state, reference.state_dict())
    config = {
        "exp_name": "pretrain_viewmaker_pamap2_simclr",
        "model_params": {
            "out_dim": 128,
            "resnet_version": "resnet18",
            "resnet_small": True,
            "projection_head": False,
            "view_bound_magnitude": 0.05,
            "num_res_blocks": 3,
        },
    }
    (tmp_path / "config.json").write_text(json.dumps(config))

    viewmaker, encoder = convert(tmp_path / "pamap.ckpt", tmp_path / "config.json", tmp_path / "out")
    assert viewmaker.config.num_channels == 52 and not viewmaker.config.clamp
    for key, value in viewmaker.state_dict().items():
        assert torch.equal(value, state[key]), key
    x = torch.randn(2, 52, 32, 32)
    with torch.no_grad():
        expected, _ = reference(x)
        torch.testing.assert_close(encoder(x).embeddings, expected, atol=1e-5, rtol=1e-5)


def test_audio_checkpoint_with_torchvision_resnet18(tmp_path, fixtures_dir):
    viewmaker_state, _ = _original_viewmaker_state(fixtures_dir, "spectrogram_dct_2blocks")
    tv = load_file(fixtures_dir / "torchvision_resnet" / "torchvision_resnet18_1ch.safetensors")
    encoder_state = {k[len("state_dict.") :]: v for k, v in tv.items() if k.startswith("state_dict.")}
    _write_lightning_checkpoint(tmp_path / "audio.ckpt", viewmaker_state, encoder_state)
    (tmp_path / "config.json").write_text(json.dumps(AUDIO_CONFIG))

    viewmaker, _ = convert(tmp_path / "audio.ckpt", tmp_path / "config.json", tmp_path / "out")
    # The audio system always builds a plain, unclamped viewmaker on 1 channel (docs/method.md §1).
    assert (viewmaker.config.num_channels, viewmaker.config.distortion_budget) == (1, 0.1)
    assert viewmaker.config.activation == "leaky_relu" and not viewmaker.config.clamp
    assert not viewmaker.config.frequency_domain
    with torch.no_grad():
        out = AutoModel.from_pretrained(tmp_path / "out" / "encoder").eval()(tv["input"])
    scale = tv["expected_prepool"].abs().max()
    assert (out.last_hidden_state - tv["expected_prepool"]).abs().max() <= 1e-5 * scale
    assert (out.embeddings - tv["expected_embeddings"]).abs().max() <= 1e-5 * tv["expected_embeddings"].abs().max()


def _cifar_checkpoint(tmp_path, fixtures_dir, mutate):
    viewmaker_state, _ = _original_viewmaker_state(fixtures_dir, "cifar_l1_clamp")
    encoder_state = ReferenceResNetSmall(3).state_dict()
    mutate(viewmaker_state, encoder_state)
    _write_lightning_checkpoint(tmp_path / "bad.ckpt", viewmaker_state, encoder_state)
    (tmp_path / "config.json").write_text(json.dumps(CIFAR_CONFIG))
    return tmp_path / "bad.ckpt", tmp_path / "config.json"


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda vm, enc: vm.pop("in3.bias"), r"missing: \['in3.bias'\]"),
        (lambda vm, enc: enc.update({"extra.weight": torch.zeros(1)}), r"unexpected: \['extra.weight'\]"),
        (lambda vm, enc: vm.update({"conv1.conv2d.bias": torch.zeros(5)}), r"wrong shape: \['conv1.conv2d.bias'\]"),
    ],
)
def test_key_mismatches_are_named_and_nothing_is_written(tmp_path, fixtures_dir, mutate, message):
    checkpoint, config = _cifar_checkpoint(tmp_path, fixtures_dir, mutate)
    with pytest.raises(ValueError, match=message):
        convert(checkpoint, config, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_top_level_keys_are_an_error(tmp_path, fixtures_dir):
    viewmaker_state, _ = _original_viewmaker_state(fixtures_dir, "cifar_l1_clamp")
    _write_lightning_checkpoint(tmp_path / "x.ckpt", viewmaker_state, {}, extra={"discriminator.w": torch.zeros(1)})
    (tmp_path / "config.json").write_text(json.dumps(CIFAR_CONFIG))
    with pytest.raises(ValueError, match="discriminator.w"):
        convert(tmp_path / "x.ckpt", tmp_path / "config.json", tmp_path / "out")


class NotATensor:
    pass


def test_arbitrary_pickles_are_refused(tmp_path):
    torch.save({"state_dict": {"viewmaker.x": torch.zeros(1)}, "hparams": NotATensor()}, tmp_path / "evil.ckpt")
    (tmp_path / "config.json").write_text(json.dumps(CIFAR_CONFIG))
    with pytest.raises(ValueError, match="weights_only=True"):
        convert(tmp_path / "evil.ckpt", tmp_path / "config.json", tmp_path / "out")


def test_existing_output_is_not_overwritten(tmp_path, fixtures_dir):
    checkpoint, config = _cifar_checkpoint(tmp_path, fixtures_dir, lambda vm, enc: None)
    (tmp_path / "out" / "encoder").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="encoder"):
        convert(checkpoint, config, tmp_path / "out")
    assert not (tmp_path / "out" / "viewmaker").exists()


def test_expert_configs_have_no_viewmaker_to_convert(tmp_path, fixtures_dir):
    checkpoint, _ = _cifar_checkpoint(tmp_path, fixtures_dir, lambda vm, enc: None)
    expert = json.loads(json.dumps(CIFAR_CONFIG))
    del expert["model_params"]["view_bound_magnitude"]
    (tmp_path / "expert.json").write_text(json.dumps(expert))
    with pytest.raises(ValueError, match="view_bound_magnitude"):
        convert(checkpoint, tmp_path / "expert.json", tmp_path / "out")
