"""Convert a checkpoint of the authors' original code into a viewmaker and an encoder folder.

    python -m hf_viewmaker.convert_original_checkpoint \
        --checkpoint epoch=199.ckpt --original_config pretrain_viewmaker_cifar10_simclr.json --output_dir converted

writes `converted/viewmaker` and `converted/encoder`, each loadable with `AutoModel.from_pretrained` and, for images
and speech, with the processor that makes the original's inputs, and
`converted/conversion.json` (what was converted: the files, the checkpoint's SHA-256, the settings, the versions),
from which `hf-viewmaker card converted` writes its model card.

The original checkpoint is a PyTorch Lightning 0.9 file whose `state_dict` holds `viewmaker.*` (the viewmaker) and
`model.*` (the encoder) keys; its JSON config gives the hyperparameters (docs/method.md §6). The file is read with
`torch.load(weights_only=True)`, which refuses arbitrary pickled objects; a `.safetensors` file holding the same
`state_dict` keys is accepted too.
"""

import argparse
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

from .adversarial.runtime import framework_versions
from .hub.model_card import CONVERSION_RECORD
from .models.encoder import ContrastiveResNetConfig, ContrastiveResNetModel
from .models.viewmaker import ViewmakerConfig, ViewmakerModel
from .processing import LogMelFeatureExtractor, ViewmakerImageProcessor

DOMAINS = ("image", "audio", "sensor")
# Buffers of the original training system that belong to neither network (the InstDisc memory bank, §3.2).
IGNORED_PREFIXES = ("memory_bank.",)
# Input channels and spatial size of each domain's encoder input (docs/method.md §2, §4).
DOMAIN_CHANNELS = {"image": 3, "audio": 1, "sensor": 52}
ORIGINAL_RES_BLOCKS = 5


def load_original_state_dict(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    """The `state_dict` of an original checkpoint, read without unpickling arbitrary objects."""
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return load_file(path)
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"could not read {path} with torch.load(weights_only=True): {error}. The file holds objects other than "
            "tensors and plain containers; it is not unpickled unsafely. Extract its 'state_dict' to a .safetensors "
            "file in an environment you trust and convert that."
        ) from error
    state_dict = content.get("state_dict", content) if isinstance(content, dict) else None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"{path} holds no 'state_dict' mapping of tensors")
    return state_dict


def infer_domain(original_config: dict) -> str:
    """Which of the original's three training scripts a config belongs to (docs/method.md §6)."""
    data_params = original_config.get("data_params") or {}
    name = f"{original_config.get('exp_name', '')} {data_params.get('dataset', '')}".lower()
    if "pamap" in name:
        return "sensor"
    if "librispeech" in name or "input_size" in data_params:
        return "audio"
    if "cifar" in name:
        return "image"
    raise ValueError(
        "could not tell the domain of the original config from its exp_name / data_params; pass --domain "
        f"(one of {DOMAINS})"
    )


def viewmaker_config_from_original(original_config: dict, domain: str) -> ViewmakerConfig:
    """The viewmaker the original system built for this config. Missing keys take the original systems' defaults,
    including the as-shipped behaviour: CIFAR views are clamped only if `clamp_views` is set (docs/method.md §1)."""
    params = original_config["model_params"]
    if "view_bound_magnitude" not in params:
        raise ValueError("model_params.view_bound_magnitude is missing: this config trained no viewmaker (expert run?)")
    return ViewmakerConfig(
        num_channels=DOMAIN_CHANNELS[domain],
        distortion_budget=float(params["view_bound_magnitude"]),
        activation=params.get("generator_activation") or "relu",
        clamp=bool(params.get("clamp_views")) if domain == "image" else False,
        frequency_domain=bool(params.get("spectral")) if domain == "image" else False,
        downsample_to=(params.get("viewmaker_downsample") or None) if domain == "image" else None,
        # The image system defaults to 5 blocks when the key is absent; every shipped config sets it.
        num_res_blocks=int(params.get("num_res_blocks") or ORIGINAL_RES_BLOCKS),
    )


def encoder_config_from_original(original_config: dict, domain: str) -> ContrastiveResNetConfig:
    """The encoder the original system built for this config (docs/method.md §2)."""
    params = original_config["model_params"]
    data_params = original_config.get("data_params") or {}
    version = params.get("resnet_version", "resnet18")
    if version not in ("resnet18", "resnet50"):
        raise ValueError(f"model_params.resnet_version={version!r} is not supported (resnet18, resnet50)")
    bottleneck = version == "resnet50"
    if params.get("resnet_small"):
        image_size = int(data_params.get("input_size") or 32)
        if image_size != 32:
            # The original then pools 8x8 maps to 2x2 and feeds 4x the features to fc; no shipped config does this.
            raise ValueError(f"resnet_small with input_size={image_size} is not supported (only 32)")
        stem, initializer = "cifar", "pytorch_default"
    else:
        image_size = int(data_params.get("input_size") or 32)
        stem, initializer = "imagenet", "kaiming_normal"
    return ContrastiveResNetConfig(
        num_channels=DOMAIN_CHANNELS[domain],
        stem=stem,
        block_type="bottleneck" if bottleneck else "basic",
        depths=[3, 4, 6, 3] if bottleneck else [2, 2, 2, 2],
        embedding_dim=int(params.get("out_dim", 128)),
        projection_head="mlp" if params.get("projection_head") else "linear",
        initializer=initializer,
        image_size=image_size,
    )


def _match_keys(converted: dict[str, torch.Tensor], model: torch.nn.Module, what: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(converted) if expected[k].shape != converted[k].shape)
    if missing or unexpected or wrong_shape:
        problems = [
            f"{label}: {keys[:8]}{' ...' if len(keys) > 8 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape))
            if keys
        ]
        raise ValueError(f"the checkpoint's {what} keys do not match the configured model; " + "; ".join(problems))


def split_state_dict(
    state_dict: dict[str, torch.Tensor], viewmaker_config: ViewmakerConfig
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split an original state dict into viewmaker and encoder weights under this project's names: residual blocks
    that never ran are dropped, and resnet_small's `shortcut` is torchvision's `downsample`."""
    unused_blocks = tuple(f"res{i}." for i in range(viewmaker_config.num_res_blocks + 1, ORIGINAL_RES_BLOCKS + 1))
    viewmaker, encoder, unknown = {}, {}, []
    for key, tensor in state_dict.items():
        if key.startswith("viewmaker."):
            name = key.removeprefix("viewmaker.")
            if not name.startswith(unused_blocks):
                viewmaker[name] = tensor
        elif key.startswith("model."):
            encoder[key.removeprefix("model.").replace(".shortcut.", ".downsample.")] = tensor
        elif not key.startswith(IGNORED_PREFIXES):
            unknown.append(key)
    if unknown:
        raise ValueError(f"unknown keys in the checkpoint (neither viewmaker.* nor model.*): {unknown[:8]}")
    return viewmaker, encoder


def convert(
    checkpoint: str | Path, original_config: str | Path, output_dir: str | Path, domain: str | None = None
) -> tuple[ViewmakerModel, ContrastiveResNetModel]:
    """Convert and save to `output_dir/viewmaker` and `output_dir/encoder`, with `output_dir/conversion.json`;
    returns both models (eval mode).

    Nothing is written unless both models convert cleanly, and an existing folder is never overwritten.
    """
    config = json.loads(Path(original_config).read_text())
    if domain is None:
        domain = infer_domain(config)
    elif domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    viewmaker_config = viewmaker_config_from_original(config, domain)
    encoder_config = encoder_config_from_original(config, domain)
    viewmaker_weights, encoder_weights = split_state_dict(load_original_state_dict(checkpoint), viewmaker_config)

    viewmaker, encoder = ViewmakerModel(viewmaker_config), ContrastiveResNetModel(encoder_config)
    for weights, model, what in ((viewmaker_weights, viewmaker, "viewmaker"), (encoder_weights, encoder, "encoder")):
        _match_keys(weights, model, what)
        model.load_state_dict(weights, strict=True)
        model.eval()

    output_dir = Path(output_dir)
    targets = {"viewmaker": viewmaker, "encoder": encoder}
    existing = [str(output_dir / name) for name in [*targets, CONVERSION_RECORD] if (output_dir / name).exists()]
    if existing:
        raise FileExistsError(f"refusing to overwrite {existing}")
    output_dir.mkdir(parents=True, exist_ok=True)
    # Save into a scratch folder beside the target and move into place, so an interrupted run leaves no
    # half-written model folder behind.
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".converting-") as scratch:
        for name, model in targets.items():
            model.save_pretrained(Path(scratch) / name)
            processor = original_processor(domain, encoder_config, normalizes=name == "encoder")
            if processor is not None:
                processor.save_pretrained(Path(scratch) / name)
        record = conversion_record(checkpoint, original_config, config, domain, encoder_config)
        (Path(scratch) / CONVERSION_RECORD).write_text(json.dumps(record, indent=2) + "\n")
        for name in [*targets, CONVERSION_RECORD]:
            shutil.move(str(Path(scratch) / name), str(output_dir / name))
    return viewmaker, encoder


def original_processor(domain: str, encoder_config: ContrastiveResNetConfig, normalizes: bool):
    """The processor that makes the original's inputs from raw data (docs/method.md §4): CIFAR-10 images as [0, 1]
    pixels (normalised with CIFAR-10's statistics for the encoder, not for the viewmaker, which perturbs pixels), or
    LibriSpeech's normalised log-mels. `None` for sensors: their statistics belong to the data, which the
    checkpoint does not hold."""
    if domain == "image":
        size = {"height": encoder_config.image_size, "width": encoder_config.image_size}
        return ViewmakerImageProcessor(num_channels=3, size=size, do_normalize=normalizes)
    if domain == "audio":
        return LogMelFeatureExtractor(size=encoder_config.image_size)
    return None


def conversion_record(
    checkpoint: str | Path,
    original_config_path: str | Path,
    original_config: dict,
    domain: str,
    encoder_config: ContrastiveResNetConfig,
) -> dict:
    """What a converted folder came from, for its model card."""
    digest = hashlib.sha256()
    with open(checkpoint, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    params = original_config["model_params"]
    return {
        "checkpoint": Path(checkpoint).name,
        "checkpoint_sha256": digest.hexdigest(),
        "original_config": Path(original_config_path).name,
        "domain": domain,
        "input_shape": [encoder_config.num_channels, encoder_config.image_size, encoder_config.image_size],
        "settings": {
            "experiment": original_config.get("exp_name"),
            "distortion budget": params.get("view_bound_magnitude"),
            "encoder": params.get("resnet_version", "resnet18"),
            "embedding": params.get("out_dim", 128),
        },
        "framework_versions": framework_versions(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="original PyTorch Lightning .ckpt (or .safetensors)")
    parser.add_argument("--original_config", required=True, help="the original JSON config of that run")
    parser.add_argument("--output_dir", required=True, help="receives viewmaker/ and encoder/")
    parser.add_argument("--domain", choices=DOMAINS, help="default: inferred from the config")
    args = parser.parse_args(argv)
    convert(args.checkpoint, args.original_config, args.output_dir, args.domain)
    print(f"wrote {Path(args.output_dir) / 'viewmaker'} and {Path(args.output_dir) / 'encoder'}")


if __name__ == "__main__":
    main()
