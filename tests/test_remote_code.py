"""Checkpoints load with `trust_remote_code=True` in a Python where hf_viewmaker cannot be imported."""

import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file

from hf_viewmaker import (
    ContrastiveResNetConfig,
    ContrastiveResNetForClassification,
    ContrastiveResNetModel,
    ViewmakerConfig,
    ViewmakerModel,
)

LOAD_WITHOUT_PACKAGE = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockHfViewmaker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "hf_viewmaker" or name.startswith("hf_viewmaker."):
                raise ModuleNotFoundError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, BlockHfViewmaker())

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
)


def run_without_package(tmp_path, checkpoint, inputs, seed: int | None = None, auto_class="AutoModel") -> torch.Tensor:
    """The first output of `<auto_class>.from_pretrained(checkpoint, trust_remote_code=True)(inputs)`, computed in a
    fresh Python that cannot import hf_viewmaker."""
    save_file({"inputs": inputs}, tmp_path / "inputs.safetensors")
    script = tmp_path / "load.py"
    script.write_text(LOAD_WITHOUT_PACKAGE)
    env = {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules"), "PATH": ""}
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            auto_class,
            str(checkpoint),
            str(tmp_path / "inputs.safetensors"),
            str(tmp_path / "out.safetensors"),
        ]
        + ([] if seed is None else [str(seed)]),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
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
