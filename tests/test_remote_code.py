"""Checkpoints and their processors load with `trust_remote_code=True` in a Python where hf_viewmaker cannot be
imported, and through their Auto classes with it."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoProcessor

from hf_viewmaker import (
    ContrastiveResNetConfig,
    ContrastiveResNetForClassification,
    ContrastiveResNetModel,
    LogMelFeatureExtractor,
    SensorSpectrogramProcessor,
    ViewmakerConfig,
    ViewmakerImageProcessor,
    ViewmakerModel,
)

from helpers import run_python

LOAD_WITHOUT_PACKAGE = """
import torch
from safetensors.torch import load_file, save_file
import transformers

auto_class, checkpoint, inputs_file, outputs_file, *seed = sys.argv[1:]
kwargs = {"generator": torch.Generator().manual_seed(int(seed[0]))} if seed else {}
model = getattr(transformers, auto_class).from_pretrained(checkpoint, trust_remote_code=True).eval()
assert "hf_viewmaker" not in type(model).__module__, type(model).__module__
inputs = load_file(inputs_file)["inputs"]
with torch.no_grad():
    outputs = model(inputs, **kwargs)
save_file({"output": outputs[0].contiguous()}, outputs_file)
"""


def run_without_package(tmp_path, checkpoint, inputs, seed: int | None = None, auto_class="AutoModel") -> torch.Tensor:
    """The first output of `<auto_class>.from_pretrained(checkpoint, trust_remote_code=True)(inputs)`, computed in a
    fresh Python that cannot import hf_viewmaker."""
    save_file({"inputs": inputs}, tmp_path / "inputs.safetensors")
    args = [auto_class, checkpoint, tmp_path / "inputs.safetensors", tmp_path / "out.safetensors"]
    env = {"HF_MODULES_CACHE": str(tmp_path / "modules")}
    run_python(LOAD_WITHOUT_PACKAGE, *args, *([] if seed is None else [seed]), cwd=tmp_path, env=env)
    return load_file(tmp_path / "out.safetensors")["output"]


def test_viewmaker_loads_as_remote_code(tmp_path):
    model = ViewmakerModel(ViewmakerConfig(num_channels=1, num_res_blocks=2, clamp=False)).eval()
    model.save_pretrained(tmp_path / "viewmaker")
    assert (tmp_path / "viewmaker" / "modeling_viewmaker.py").is_file()
    assert (tmp_path / "viewmaker" / "configuration_viewmaker.py").is_file()

    inputs = torch.randn(2, 1, 12, 12)
    remote = run_without_package(tmp_path, tmp_path / "viewmaker", inputs, seed=0)
    with torch.no_grad():
        local = model(inputs, generator=torch.Generator().manual_seed(0)).views
    torch.testing.assert_close(remote, local, rtol=0, atol=0)


TINY_ENCODER = dict(
    num_channels=2, stem_channels=8, depths=[1, 1], hidden_sizes=[8, 16], embedding_dim=8, image_size=16
)


@pytest.mark.parametrize(
    "model_class,auto_class,files",
    [
        (ContrastiveResNetModel, "AutoModel", ["modeling_encoder.py", "configuration_encoder.py"]),
        (ContrastiveResNetForClassification, "AutoModelForImageClassification", ["modeling_encoder.py"]),
    ],
)
def test_encoder_loads_as_remote_code(tmp_path, model_class, auto_class, files):
    model = model_class(ContrastiveResNetConfig(**TINY_ENCODER, num_labels=3, classifier_features="prepool")).eval()
    model.save_pretrained(tmp_path / "encoder")
    for name in files:
        assert (tmp_path / "encoder" / name).is_file()

    inputs = torch.randn(2, 2, 16, 16)
    remote = run_without_package(tmp_path, tmp_path / "encoder", inputs, auto_class=auto_class)
    with torch.no_grad():
        local = model(inputs)[0]
    torch.testing.assert_close(remote, local, rtol=0, atol=0)


# One saved encoder per domain, with the processor that makes its inputs from raw data, and that raw data.
def _image_domain(folder):
    encoder = ContrastiveResNetModel(ContrastiveResNetConfig(**{**TINY_ENCODER, "num_channels": 1})).eval()
    processor = ViewmakerImageProcessor(
        num_channels=1, size={"height": 16, "width": 16}, do_normalize=True, image_mean=[0.3], image_std=[0.4]
    )
    raw = np.random.default_rng(0).integers(0, 256, (2, 20, 24, 1), dtype=np.uint8)  # two greyscale images
    return encoder, processor, raw, "AutoImageProcessor"


def _speech_domain(folder):
    encoder = ContrastiveResNetModel(ContrastiveResNetConfig(**{**TINY_ENCODER, "num_channels": 1})).eval()
    processor = LogMelFeatureExtractor(size=32)
    raw = np.random.default_rng(0).standard_normal((2, 16000)).astype(np.float32)  # two 1 s clips at 16 kHz
    return encoder, processor, raw, "AutoFeatureExtractor"


def _sensor_domain(folder):
    encoder = ContrastiveResNetModel(ContrastiveResNetConfig(**{**TINY_ENCODER, "num_channels": 3})).eval()
    processor = SensorSpectrogramProcessor(num_channels=3, channel_means=[0.1, 0.2, 0.3], channel_stds=[1, 2, 3])
    raw = np.random.default_rng(0).standard_normal((2, 3, 64)).astype(np.float32)  # two windows, 3 channels
    return encoder, processor, raw, "AutoFeatureExtractor"


DOMAINS = {"image": _image_domain, "speech": _speech_domain, "sensor": _sensor_domain}
PROCESS_WITHOUT_PACKAGE = """
import numpy as np
import torch
import transformers
from safetensors.torch import save_file

auto_class, folder, raw_file, outputs_file = sys.argv[1:]
processor = getattr(transformers, auto_class).from_pretrained(folder, trust_remote_code=True)
assert type(processor).__module__.startswith("transformers_modules."), type(processor).__module__
model = transformers.AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
raw = np.load(raw_file)
inputs = processor(list(raw), return_tensors="pt") if raw.ndim == 4 else processor(raw)
with torch.no_grad():
    features = model(**inputs).pooler_output
save_file({"features": features.contiguous()}, outputs_file)
"""


@pytest.mark.parametrize("domain", DOMAINS)
def test_processors_load_through_their_auto_classes_with_and_without_the_package(tmp_path, domain):
    encoder, processor, raw, auto_class = DOMAINS[domain](tmp_path)
    folder = tmp_path / domain
    encoder.save_pretrained(folder)
    processor.save_pretrained(folder)

    # With the package: the Auto classes find the saved processor by its name, and its outputs are the model's inputs.
    auto = {"AutoImageProcessor": AutoImageProcessor, "AutoFeatureExtractor": AutoFeatureExtractor}[auto_class]
    for loader in (auto, AutoProcessor):
        assert type(loader.from_pretrained(folder)) is type(processor), loader
    loaded = auto.from_pretrained(folder)
    inputs = loaded(list(raw), return_tensors="pt") if domain == "image" else loaded(raw)
    assert set(inputs) == {"pixel_values" if domain == "image" else "input_features"}
    with torch.no_grad():
        local = encoder(**inputs).pooler_output

    # Without it: the processor's code, saved beside it, makes the same inputs.
    np.save(tmp_path / "raw.npy", raw)
    args = [auto_class, folder, tmp_path / "raw.npy", tmp_path / "out.safetensors"]
    run_python(PROCESS_WITHOUT_PACKAGE, *args, cwd=tmp_path, env={"HF_MODULES_CACHE": str(tmp_path / "modules")})
    torch.testing.assert_close(load_file(tmp_path / "out.safetensors")["features"], local, rtol=0, atol=0)


def test_a_processor_of_another_kind_is_never_substituted(tmp_path):
    """The encoder's config serves every domain: asking for the wrong kind of processor is an error, not a guess."""
    encoder, processor, _, _ = _image_domain(tmp_path)
    encoder.save_pretrained(tmp_path / "image")
    processor.save_pretrained(tmp_path / "image")
    with pytest.raises(ValueError, match="Unrecognized feature extractor"):
        AutoFeatureExtractor.from_pretrained(tmp_path / "image")
