"""Any transformers backbone as the contrastive encoder: the backbone's own model and a projection head beside it.

A run saves such an encoder as the backbone's own folder (`ViTModel.save_pretrained`, ...: it loads with
`AutoModel.from_pretrained` without this package or `trust_remote_code`), plus `projection_head.safetensors` and
`projection_head.json`, which `BackboneWithProjection.from_pretrained` reads to continue pretraining.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers.utils import cached_file

from ..encoder.modeling_encoder import ContrastiveResNetOutput

PROJECTION_HEAD_WEIGHTS = "projection_head.safetensors"
PROJECTION_HEAD_CONFIG = "projection_head.json"


def file_lookup_kwargs(from_pretrained_kwargs: dict) -> dict:
    """The arguments of `from_pretrained` that also say where `cached_file` finds a file saved beside a model."""
    names = ("subfolder", "revision", "cache_dir", "token", "local_files_only")
    return {k: v for k, v in from_pretrained_kwargs.items() if k in names}


def pooled_width(config: PreTrainedConfig) -> int:
    """The width of a backbone's pooled output: `hidden_size` (ViT, Swin, AST, ...) or the last of `hidden_sizes`
    (ConvNeXt, ResNet)."""
    width = getattr(config, "hidden_size", None)
    if width is None and getattr(config, "hidden_sizes", None):
        width = config.hidden_sizes[-1]
    if not isinstance(width, int):
        raise ValueError(
            f"{type(config).__name__} has neither hidden_size nor hidden_sizes: its pooled width is unknown"
        )
    return width


def check_backbone_inputs(config: PreTrainedConfig, num_channels: int, image_size: int | None = None) -> None:
    """Raise a ValueError naming the field when a backbone's config cannot take `num_channels`-channel inputs of
    `image_size` x `image_size` (checked by one forward pass of a freshly built model when `image_size` is given),
    or masks its inputs (an MAE: the encoder would see a random part of every view)."""
    name = type(config).__name__
    if getattr(config, "mask_ratio", 0):
        raise ValueError(f"{name} masks {config.mask_ratio:.0%} of its input at random: use its unmasked model")
    if hasattr(config, "num_mel_bins"):
        if num_channels != 1:
            raise ValueError(f"{name} reads one-channel spectrograms, but the inputs have {num_channels} channels")
    elif getattr(config, "num_channels", num_channels) != num_channels:
        raise ValueError(
            f"{name} has num_channels={config.num_channels}, but the inputs have {num_channels}: set num_channels "
            f"in the config"
        )
    if image_size is None:
        return
    try:
        with torch.no_grad():
            BackboneWithProjection.from_config(config).eval()(torch.zeros(1, num_channels, image_size, image_size))
    except Exception as error:  # whatever the backbone raises: its own message says which field is wrong
        raise ValueError(
            f"{name} cannot encode {num_channels} x {image_size} x {image_size} inputs ({type(error).__name__}: "
            f"{error}); fix its config (image_size, num_mel_bins / max_length, ...)"
        ) from None


class ProjectionHead(nn.Sequential):
    """The contrastive projection of a pooled representation: `"linear"` or `"mlp"` (Linear, ReLU, Linear, as the
    ResNet encoder's MLP head)."""

    def __init__(self, in_features: int, embedding_dim: int, kind: str = "linear"):
        if kind == "mlp":
            layers = [nn.Linear(in_features, in_features), nn.ReLU(), nn.Linear(in_features, embedding_dim)]
        elif kind == "linear":
            layers = [nn.Linear(in_features, embedding_dim)]
        else:
            raise ValueError(f"projection_head must be 'linear' or 'mlp', got {kind!r}")
        super().__init__(*layers)
        self.kind, self.in_features, self.embedding_dim = kind, in_features, embedding_dim


class BackboneWithProjection(nn.Module):
    """
    A transformers backbone and a projection head on its pooled output: the contrastive encoder of
    `ViewmakerForContrastivePretraining` when its `encoder_config` is not a `ContrastiveResNetConfig`.

    The representation is the backbone's `pooler_output` where it has one, else the mean of `last_hidden_state` over
    its tokens (or spatial positions). Its forward takes what `ContrastiveResNetModel` takes, `[batch, channels,
    height, width]` views, and returns a `ContrastiveResNetOutput`; a backbone whose input is `input_values` (an audio
    spectrogram transformer: `[batch, time, frequency]`) gets the one-channel spectrogram `[batch, 1, frequency,
    time]` transposed.

    Args:
        backbone (`PreTrainedModel`): e.g. a `ViTModel`, `ConvNextModel`, `SwinModel` or `ASTModel`.
        projection_head (`str`, defaults to `"linear"`) / embedding_dim (`int`, defaults to 128): the projection.
    """

    check_input_values = False  # the backbone's own checks apply; the training step guards non-finite losses

    def __init__(self, backbone: PreTrainedModel, projection_head: str = "linear", embedding_dim: int = 128):
        super().__init__()
        self.backbone = backbone
        self.head = ProjectionHead(pooled_width(backbone.config), embedding_dim, projection_head)

    @property
    def config(self) -> PreTrainedConfig:
        return self.backbone.config

    @classmethod
    def from_config(
        cls, config: PreTrainedConfig, projection_head: str = "linear", embedding_dim: int = 128
    ) -> BackboneWithProjection:
        """A randomly initialised backbone of `config`."""
        return cls(AutoModel.from_config(config), projection_head, embedding_dim)

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, projection_head: str | None = None, embedding_dim: int | None = None, **kwargs
    ) -> BackboneWithProjection:
        """The backbone saved at `name_or_path` (a folder or Hub id, `kwargs` as for `from_pretrained`) with the
        projection head saved beside it (a run's `encoder/`), or a fresh one (`"linear"`, 128-d unless given) where
        none was saved. Asking for another head than the saved one is an error."""
        # float32 weights whatever the checkpoint's dtype (transformers loads `dtype="auto"`): the head is float32,
        # and mixed precision is autocast's job.
        backbone = AutoModel.from_pretrained(name_or_path, **{"dtype": torch.float32, **kwargs})
        hub = file_lookup_kwargs(kwargs)
        described = cached_file(
            name_or_path, PROJECTION_HEAD_CONFIG, _raise_exceptions_for_missing_entries=False, **hub
        )
        if described is None:
            return cls(backbone, projection_head or "linear", embedding_dim or 128)
        saved = json.loads(Path(described).read_text())
        model = cls(backbone, saved["kind"], saved["embedding_dim"])
        wanted = {"kind": projection_head or saved["kind"], "embedding_dim": embedding_dim or saved["embedding_dim"]}
        if wanted != {"kind": saved["kind"], "embedding_dim": saved["embedding_dim"]}:
            raise ValueError(
                f"{name_or_path} holds a {saved['kind']} projection head of {saved['embedding_dim']} outputs, but a "
                f"{wanted['kind']} one of {wanted['embedding_dim']} was asked for: pass the run's --projection_head "
                "and --embedding_dim"
            )
        model.head.load_state_dict(load_file(cached_file(name_or_path, PROJECTION_HEAD_WEIGHTS, **hub)))
        return model

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> None:
        """The backbone's own `save_pretrained` folder, with the projection head's weights and shape beside it."""
        self.backbone.save_pretrained(save_directory, **kwargs)
        folder = Path(save_directory)
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, folder / PROJECTION_HEAD_WEIGHTS)
        description = {"kind": self.head.kind, "embedding_dim": self.head.embedding_dim}
        (folder / PROJECTION_HEAD_CONFIG).write_text(
            json.dumps({**description, "in_features": self.head.in_features}, indent=2) + "\n"
        )

    def represent(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`(last_hidden_state, pooled)` of `[batch, channels, height, width]` inputs."""
        name = self.backbone.main_input_name
        if name == "pixel_values":
            out = self.backbone(pixel_values=pixel_values)
        else:
            if pixel_values.ndim != 4 or pixel_values.shape[1] != 1:
                raise ValueError(
                    f"{type(self.backbone).__name__} reads one-channel spectrograms [batch, 1, frequency, time], got "
                    f"shape {tuple(pixel_values.shape)}"
                )
            out = self.backbone(**{name: pixel_values[:, 0].transpose(1, 2)})
        hidden = out.last_hidden_state
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = hidden.mean(dim=1) if hidden.ndim == 3 else hidden.flatten(2).mean(dim=2)
        pooled = pooled.flatten(1)  # CNNs such as transformers' ResNet pool to [batch, channels, 1, 1]
        return hidden, pooled

    def forward(
        self, pixel_values: torch.Tensor | None = None, input_features: torch.Tensor | None = None, **kwargs
    ) -> ContrastiveResNetOutput:
        """`ContrastiveResNetOutput(last_hidden_state, pooler_output, embeddings)` of the views (give one of
        `pixel_values` / `input_features`)."""
        if (pixel_values is None) == (input_features is None):
            raise ValueError("give the inputs as one of pixel_values (images) or input_features (spectrograms)")
        hidden, pooled = self.represent(pixel_values if pixel_values is not None else input_features)
        return ContrastiveResNetOutput(last_hidden_state=hidden, pooler_output=pooled, embeddings=self.head(pooled))


def load_encoder_config(name_or_path: str, **kwargs) -> PreTrainedConfig:
    """The config of `--encoder_name_or_path` / `--encoder_config_name`: a folder, a Hub id (`kwargs` as for
    `AutoConfig.from_pretrained`) or a `config.json` file."""
    path = Path(name_or_path)
    if path.is_file():
        config = json.loads(path.read_text())
        if "model_type" not in config:
            raise ValueError(f"{path} has no model_type: it is not a transformers config")
        return AutoConfig.for_model(**config)
    return AutoConfig.from_pretrained(name_or_path, **kwargs)


__all__ = [
    "BackboneWithProjection",
    "ProjectionHead",
    "check_backbone_inputs",
    "file_lookup_kwargs",
    "load_encoder_config",
    "pooled_width",
]
