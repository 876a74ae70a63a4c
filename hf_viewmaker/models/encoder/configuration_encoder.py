"""Contrastive ResNet encoder configuration.

Self-contained on purpose: this file is copied next to the weights for `trust_remote_code=True` loading, where
`hf_viewmaker` may not be installed.
"""

from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

try:
    from transformers.backbone_utils import BackboneConfigMixin
except ImportError:  # transformers before the module moved (it is loaded where this package may not be installed)
    from transformers.utils.backbone_utils import BackboneConfigMixin


@strict
class ContrastiveResNetConfig(BackboneConfigMixin, PreTrainedConfig):
    r"""
    Configuration of a [`ContrastiveResNetModel`]: a ResNet trunk, global average pooling and a projection to the
    contrastive embedding, covering every encoder of Tamkin et al., 2021 (docs/method.md §2). The defaults build the
    CIFAR `resnet_small` ResNet-18 with its linear 128-d projection.

    Args:
        num_channels (`int`, defaults to 3):
            Input channels (3 for images, 1 for log-mel spectrograms, 52 for Pamap2 sensor spectrograms).
        stem (`str`, defaults to `"cifar"`):
            The first layers before the stages:
            - `"cifar"`: a 3x3 stride-1 convolution + BatchNorm + ReLU, no max-pool (`resnet_small`).
            - `"imagenet"`: torchvision's 7x7 stride-2 convolution (padding 3) + BatchNorm + ReLU + 3x3 stride-2
              max-pool, which the original audio encoders use.
        stem_channels (`int`, defaults to 64):
            Output channels of the stem convolution.
        block_type (`str`, defaults to `"basic"`):
            `"basic"` (two 3x3 convolutions, ResNet-18/34) or `"bottleneck"` (1x1, 3x3, 1x1 with expansion 4 and the
            stride on the 3x3 convolution, as torchvision's ResNet v1.5 and `resnet_small`; ResNet-50 and deeper).
        depths (`list[int]`, defaults to `[2, 2, 2, 2]`):
            Blocks per stage. The first stage has stride 1, every other stage stride 2.
        hidden_sizes (`list[int]`, defaults to `[64, 128, 256, 512]`):
            Width of each stage before the bottleneck expansion, one per entry of `depths`. A stage outputs
            `hidden_sizes[i] * 4` channels with bottleneck blocks.
        embedding_dim (`int`, defaults to 128):
            Size of the contrastive embedding that the projection outputs.
        projection_head (`str`, defaults to `"linear"`):
            `"linear"`: one `Linear(d, embedding_dim)` on the pooled features, as every shipped image and sensor
            config and the 100 h audio configs; `"mlp"`: `Linear(d, d)` -> ReLU -> `Linear(d, embedding_dim)`, as the
            960 h audio configs. `d` is the pooled feature size.
        initializer (`str`, defaults to `"pytorch_default"`):
            `"pytorch_default"`: PyTorch's own layer init, as `resnet_small`; `"kaiming_normal"`: torchvision's ResNet
            init (convolutions `kaiming_normal_(mode="fan_out", nonlinearity="relu")`, BatchNorm weight 1 and bias 0,
            linear layers PyTorch's default).
        image_size (`int` or `list[int]`, defaults to 32):
            Input height and width (one int for square inputs). Only used to size the linear-probe head of
            [`ContrastiveResNetForClassification`] when `classifier_features="prepool"`; the encoder itself accepts
            any size.
        classifier_features (`str`, defaults to `"pooled"`):
            Features that [`ContrastiveResNetForClassification`] classifies: `"pooled"` (the pooled vector) or
            `"prepool"` (the flattened last stage map before pooling). The paper's linear evaluation uses the
            pre-pool map for CIFAR-10 and audio, and the pooled vector for Pamap2 (docs/method.md §5).

    Example:

    ```python
    >>> from hf_viewmaker.models.encoder import ContrastiveResNetConfig, ContrastiveResNetModel
    >>> config = ContrastiveResNetConfig.resnet18_audio()
    >>> model = ContrastiveResNetModel(config)
    ```
    """

    model_type = "contrastive_resnet"
    stems: ClassVar[tuple[str, ...]] = ("cifar", "imagenet")
    block_types: ClassVar[tuple[str, ...]] = ("basic", "bottleneck")
    projection_heads: ClassVar[tuple[str, ...]] = ("linear", "mlp")
    initializers: ClassVar[tuple[str, ...]] = ("pytorch_default", "kaiming_normal")
    classifier_feature_types: ClassVar[tuple[str, ...]] = ("pooled", "prepool")
    bottleneck_expansion: ClassVar[int] = 4

    num_channels: int = 3
    stem: str = "cifar"
    stem_channels: int = 64
    block_type: str = "basic"
    depths: list[int] | tuple[int, ...] = (2, 2, 2, 2)
    hidden_sizes: list[int] | tuple[int, ...] = (64, 128, 256, 512)
    embedding_dim: int = 128
    projection_head: str = "linear"
    initializer: str = "pytorch_default"
    image_size: int | list[int] | tuple[int, ...] = 32
    classifier_features: str = "pooled"

    def __post_init__(self, **kwargs):
        # Lists, so that the saved config.json and a reloaded config compare equal.
        self.depths = list(self.depths)
        self.hidden_sizes = list(self.hidden_sizes)
        if isinstance(self.image_size, tuple):
            self.image_size = list(self.image_size)
        # As a backbone (`ContrastiveResNetBackbone`, `AutoBackbone`): the stem and each stage, of which
        # `out_features` / `out_indices` name those whose maps it returns (default: the last stage).
        self.stage_names = ["stem"] + [f"stage{index}" for index in range(1, len(self.depths) + 1)]
        self.set_output_features_output_indices(
            out_indices=kwargs.pop("out_indices", None), out_features=kwargs.pop("out_features", None)
        )
        # Checked here as well as by `@strict` (which wraps errors in its own type) so that a bad value raises a
        # plain `ValueError` naming the field at construction.
        self.validate_values()
        super().__post_init__(**kwargs)

    def validate_values(self):
        """Check every field's value; `@strict` also runs this before saving."""
        for name in ("num_channels", "stem_channels", "embedding_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}.")
        for name, allowed in (
            ("stem", self.stems),
            ("block_type", self.block_types),
            ("projection_head", self.projection_heads),
            ("initializer", self.initializers),
            ("classifier_features", self.classifier_feature_types),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}.")
        for name in ("depths", "hidden_sizes"):
            values = getattr(self, name)
            if len(values) == 0 or any(v < 1 for v in values):
                raise ValueError(f"{name} must be a non-empty list of positive integers, got {values}.")
        if len(self.depths) != len(self.hidden_sizes):
            raise ValueError(
                f"depths and hidden_sizes must have one entry per stage, got {len(self.depths)} depths "
                f"({self.depths}) and {len(self.hidden_sizes)} hidden_sizes ({self.hidden_sizes})."
            )
        sizes = [self.image_size] if isinstance(self.image_size, int) else self.image_size
        if len(sizes) not in (1, 2) or any(s < 1 for s in sizes):
            raise ValueError(f"image_size must be a positive int or a list of 2 positive ints, got {self.image_size}.")

    @property
    def num_features(self) -> int:
        """Channels of the last stage map, which is also the pooled feature size."""
        expansion = self.bottleneck_expansion if self.block_type == "bottleneck" else 1
        return self.hidden_sizes[-1] * expansion

    @property
    def feature_map_size(self) -> tuple[int, int]:
        """(height, width) of the last stage map for an `image_size` input."""
        sizes = [self.image_size] if isinstance(self.image_size, int) else self.image_size
        height, width = sizes * 2 if len(sizes) == 1 else sizes
        # The imagenet stem's stride-2 convolution and max-pool, then every stage after the first, each map a size
        # s to ceil(s / 2) with their paddings.
        halvings = (2 if self.stem == "imagenet" else 0) + len(self.depths) - 1
        for _ in range(halvings):
            height, width = (height + 1) // 2, (width + 1) // 2
        return height, width

    @classmethod
    def resnet18_cifar(cls, num_channels: int = 3, **kwargs: Any) -> "ContrastiveResNetConfig":
        """The original `resnet_small` ResNet-18 (docs/method.md §2): the CIFAR-10 encoder (3 channels; its linear
        evaluation uses `classifier_features="prepool"`) and the Pamap2 encoder (`num_channels=52`, pooled features).
        `kwargs` override any other field."""
        return cls(num_channels=num_channels, **kwargs)

    @classmethod
    def resnet18_audio(cls, **kwargs: Any) -> "ContrastiveResNetConfig":
        """The 100 h speech encoder (docs/method.md §2): torchvision's ResNet-18 with a 1-channel 7x7 stride-2 stem and
        a linear 128-d projection, on 1x64x64 log-mel spectrograms, linearly evaluated on the 512x2x2 pre-pool map
        (docs/method.md §5). `kwargs` override any field."""
        defaults = dict(
            num_channels=1,
            stem="imagenet",
            initializer="kaiming_normal",
            image_size=64,
            classifier_features="prepool",
        )
        return cls(**{**defaults, **kwargs})

    @classmethod
    def resnet50_audio(cls, **kwargs: Any) -> "ContrastiveResNetConfig":
        """The 960 h speech encoder (docs/method.md §2): torchvision's ResNet-50 with a 1-channel 7x7 stride-2 stem and
        the MLP projection head, on 1x112x112 log-mel spectrograms, linearly evaluated on the 2048x4x4 pre-pool map
        (docs/method.md §5). `kwargs` override any field."""
        defaults = dict(
            num_channels=1,
            stem="imagenet",
            block_type="bottleneck",
            depths=[3, 4, 6, 3],
            projection_head="mlp",
            initializer="kaiming_normal",
            image_size=112,
            classifier_features="prepool",
        )
        return cls(**{**defaults, **kwargs})


__all__ = ["ContrastiveResNetConfig"]
