"""The contrastive ResNet encoders of Viewmaker Networks (Tamkin, Wu, Goodman, ICLR 2021) as transformers models.

Self-contained on purpose: this file and `configuration_encoder.py` are copied next to the weights for
`trust_remote_code=True` loading, where `hf_viewmaker` may not be installed. Module names follow torchvision's ResNet
(`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`, `fc`, ...), so torchvision state dicts load key for key.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BackboneOutput, ImageClassifierOutputWithNoAttention
from transformers.utils import ModelOutput

try:
    from transformers.backbone_utils import BackboneMixin
except ImportError:  # transformers before the module moved (see configuration_encoder.py)
    from transformers.utils.backbone_utils import BackboneMixin

from .configuration_encoder import ContrastiveResNetConfig


@dataclass
class ContrastiveResNetOutput(ModelOutput):
    """
    Output of [`ContrastiveResNetModel`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch, num_features, height, width)`):
            The last stage's map before pooling (the original's "layer 5", the pre-pool linear-evaluation features).
        pooler_output (`torch.FloatTensor` of shape `(batch, num_features)`):
            `last_hidden_state` averaged over its spatial positions.
        embeddings (`torch.FloatTensor` of shape `(batch, embedding_dim)`):
            The projection of `pooler_output`, the contrastive embedding. Not normalised: the objectives normalise it.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
            The stem output (after the max-pool of the `"imagenet"` stem), then the output of every stage, each of
            shape `(batch, channels, height, width)`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    embeddings: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


def _downsample(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """The 1x1 convolution + BatchNorm shortcut, where the block changes the shape; `None` (identity) otherwise."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class ContrastiveResNetBasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm, plus the shortcut, then ReLU."""

    expansion = 1

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = _downsample(in_channels, channels, stride)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        shortcut = hidden_states if self.downsample is None else self.downsample(hidden_states)
        out = F.relu(self.bn1(self.conv1(hidden_states)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + shortcut)


class ContrastiveResNetBottleneck(nn.Module):
    """1x1 reduction, 3x3 (carrying the stride, as torchvision's ResNet v1.5) and 1x1 expansion by 4, each with
    BatchNorm, plus the shortcut, then ReLU."""

    expansion = ContrastiveResNetConfig.bottleneck_expansion

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample = _downsample(in_channels, out_channels, stride)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        shortcut = hidden_states if self.downsample is None else self.downsample(hidden_states)
        out = F.relu(self.bn1(self.conv1(hidden_states)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + shortcut)


def _one_input(pixel_values: torch.Tensor | None, input_features: torch.Tensor | None) -> torch.Tensor:
    if (pixel_values is None) == (input_features is None):
        raise ValueError("give the inputs as one of pixel_values (images) or input_features (spectrograms)")
    return pixel_values if pixel_values is not None else input_features


def _pytorch_default_init(module: nn.Conv2d | nn.Linear) -> None:
    # What `module.reset_parameters()` does, but through transformers' guarded init functions, so that tensors
    # loaded by `from_pretrained` (flagged `_is_hf_initialized`) are never overwritten.
    init.kaiming_uniform_(module.weight, a=math.sqrt(5))
    if module.bias is not None:
        fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(module.weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(module.bias, -bound, bound)


# The encoder, its probe and its backbone share one config, so a folder saved from any of them loads as each: its
# `auto_map` names them all, for `trust_remote_code` users (with this package, the Auto classes are registered).
ENCODER_AUTO_MAP = {
    "AutoModel": "modeling_encoder.ContrastiveResNetModel",
    "AutoBackbone": "modeling_encoder.ContrastiveResNetBackbone",
    "AutoModelForImageClassification": "modeling_encoder.ContrastiveResNetForClassification",
    "AutoModelForAudioClassification": "modeling_encoder.ContrastiveResNetForClassification",
}


class ContrastiveResNetPreTrainedModel(PreTrainedModel):
    """Base class of the contrastive ResNet models: the config class, checkpoint prefix and weight init."""

    config_class = ContrastiveResNetConfig
    config: ContrastiveResNetConfig
    base_model_prefix = "resnet"
    main_input_name = "pixel_values"
    _no_split_modules = ["ContrastiveResNetBasicBlock", "ContrastiveResNetBottleneck"]

    def _init_weights(self, module: nn.Module) -> None:
        # Replaces transformers' generic normal(0, 0.02), which would change the encoder's starting point.
        if isinstance(module, nn.Conv2d) and self.config.initializer == "kaiming_normal":
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, (nn.Conv2d, nn.Linear)):
            _pytorch_default_init(module)
        elif isinstance(module, nn.BatchNorm2d):
            # Not `reset_parameters()`: it resets the running statistics in place, past that guard, so a BatchNorm
            # that a checkpoint fills only partly (e.g. without `num_batches_tracked`) would lose its loaded ones.
            init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`; a folder saved with its code names every class it loads as
        (`ENCODER_AUTO_MAP`)."""
        if self._auto_class is not None:
            self.config.auto_map = {**ENCODER_AUTO_MAP, **(getattr(self.config, "auto_map", None) or {})}
        return super().save_pretrained(save_directory, *args, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained`, refusing damaged weights by name: an unreadable (e.g. truncated)
        weights file, or weights that are not finite, which would silently give non-finite outputs."""
        where = str(pretrained_model_name_or_path) + (
            f" (subfolder {kwargs['subfolder']!r})" if kwargs.get("subfolder") else ""
        )
        try:
            loaded = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        except Exception as error:
            # safetensors' error type, matched by name so that this file imports only torch and transformers.
            if type(error).__name__ != "SafetensorError":
                raise
            raise OSError(f"the weights of {where} cannot be read ({error}): the file is damaged") from error
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # `output_loading_info=True`
        broken = [
            name
            for name, t in model.state_dict().items()
            if t.is_floating_point() and not t.is_meta and not t.isfinite().all()
        ]
        if broken:
            raise ValueError(f"the weights of {where} hold NaN or inf values: {', '.join(broken[:5])}")
        return loaded


class ContrastiveResNetModel(ContrastiveResNetPreTrainedModel):
    """
    The contrastive encoder: a ResNet trunk (stem and stages `layer1`..`layerN`), global average pooling to 1x1 and
    the projection `fc` to the `embedding_dim`-d embedding that the contrastive objectives use (docs/method.md §2).
    """

    # Rejecting NaN / inf inputs reads them on the host, a sync per call: compiled code skips it, and training loops
    # whose loss guard catches non-finite inputs anyway set this to False.
    check_input_values = True

    def __init__(self, config: ContrastiveResNetConfig):
        super().__init__(config)
        if config.stem == "imagenet":
            self.conv1 = nn.Conv2d(
                config.num_channels, config.stem_channels, kernel_size=7, stride=2, padding=3, bias=False
            )
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(
                config.num_channels, config.stem_channels, kernel_size=3, stride=1, padding=1, bias=False
            )
            # No max-pool in `resnet_small`; an identity keeps one forward path and adds no state-dict keys.
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(config.stem_channels)

        block = ContrastiveResNetBottleneck if config.block_type == "bottleneck" else ContrastiveResNetBasicBlock
        in_channels = config.stem_channels
        for index, (depth, channels) in enumerate(zip(config.depths, config.hidden_sizes)):
            stride = 1 if index == 0 else 2
            blocks = [block(in_channels, channels, stride)]
            in_channels = channels * block.expansion
            blocks += [block(in_channels, channels, 1) for _ in range(depth - 1)]
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))

        self.avgpool = nn.AdaptiveAvgPool2d(1)
        features = config.num_features
        if config.projection_head == "mlp":
            self.fc = nn.Sequential(nn.Linear(features, features), nn.ReLU(), nn.Linear(features, config.embedding_dim))
        else:
            self.fc = nn.Linear(features, config.embedding_dim)
        self.post_init()

    @property
    def stages(self) -> list[nn.Sequential]:
        """`layer1`..`layerN`, in order."""
        return [getattr(self, f"layer{i}") for i in range(1, len(self.config.depths) + 1)]

    def _check_input(self, pixel_values: torch.Tensor) -> None:
        channels = self.config.num_channels
        if pixel_values.ndim != 4:
            raise ValueError(
                f"pixel_values must have shape [batch, {channels}, height, width], got shape "
                f"{tuple(pixel_values.shape)}."
            )
        if pixel_values.shape[1] != channels:
            raise ValueError(
                f"pixel_values has {pixel_values.shape[1]} channels (shape {tuple(pixel_values.shape)}), but this "
                f"encoder was built for num_channels={channels}."
            )
        if self.check_input_values and not torch.compiler.is_compiling() and not torch.isfinite(pixel_values).all():
            raise ValueError(f"pixel_values of shape {tuple(pixel_values.shape)} contains NaN or inf values.")

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        input_features: torch.Tensor | None = None,
        **kwargs,
    ) -> ContrastiveResNetOutput | tuple[torch.Tensor, ...]:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, num_channels, height, width)`):
                The (normalised) inputs or views to encode, of any spatial size.
            input_features (`torch.FloatTensor` of the same shape, *optional*):
                The same, under the name the log-mel and sensor processors give their spectrograms, so that
                `model(**processor(raw))` works in every domain. Give one of the two.
            output_hidden_states (`bool`, *optional*):
                Also return the stem output and every stage output.
            return_dict (`bool`, *optional*):
                Return a [`ContrastiveResNetOutput`] instead of a `(last_hidden_state, pooler_output, embeddings[,
                hidden_states])` tuple.
        """
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        pixel_values = _one_input(pixel_values, input_features)
        self._check_input(pixel_values)

        hidden = self.maxpool(F.relu(self.bn1(self.conv1(pixel_values))))
        hidden_states = (hidden,) if output_hidden_states else None
        for stage in self.stages:
            hidden = stage(hidden)
            if output_hidden_states:
                hidden_states += (hidden,)
        pooled = torch.flatten(self.avgpool(hidden), 1)
        embeddings = self.fc(pooled)

        if not return_dict:
            return tuple(v for v in (hidden, pooled, embeddings, hidden_states) if v is not None)
        return ContrastiveResNetOutput(
            last_hidden_state=hidden, pooler_output=pooled, embeddings=embeddings, hidden_states=hidden_states
        )


class ContrastiveResNetForClassification(ContrastiveResNetPreTrainedModel):
    """
    The encoder with a linear classifier on its pooled or flattened pre-pool features (`config.classifier_features`):
    the linear-evaluation probe of docs/method.md §5, or a supervised baseline when trained end to end.
    """

    def __init__(self, config: ContrastiveResNetConfig):
        super().__init__(config)
        self.resnet = ContrastiveResNetModel(config)
        if config.classifier_features == "prepool":
            height, width = config.feature_map_size
            feature_dim = config.num_features * height * width
        else:
            feature_dim = config.num_features
        self.classifier = nn.Linear(feature_dim, config.num_labels)
        # The class name matches no entry of transformers' loss registry; this selects the image-classification loss
        # (cross-entropy, MSE or BCE per `config.problem_type`).
        self.loss_type = "ForImageClassification"
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        input_features: torch.Tensor | None = None,
        **kwargs,
    ) -> ImageClassifierOutputWithNoAttention | tuple[torch.Tensor, ...]:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, num_channels, height, width)`):
                The (normalised) inputs. With `classifier_features="prepool"` their size must give the pre-pool map of
                an `image_size` input.
            labels (`torch.LongTensor` of shape `(batch,)`, *optional*):
                Class indices in `[0, num_labels)` for a cross-entropy loss; float targets of shape
                `(batch, num_labels)` for regression or multi-label losses, per `config.problem_type`.
            output_hidden_states (`bool`, *optional*):
                Also return the encoder's stem and stage outputs.
            return_dict (`bool`, *optional*):
                Return an [`ImageClassifierOutputWithNoAttention`] instead of a `([loss,] logits[, hidden_states])`
                tuple.
            input_features (`torch.FloatTensor`, *optional*):
                `pixel_values` under the name the log-mel and sensor processors give their spectrograms (what the
                audio-classification pipeline passes). Give one of the two.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        pixel_values = _one_input(pixel_values, input_features)
        outputs = self.resnet(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)

        if self.config.classifier_features == "prepool":
            prepool = outputs.last_hidden_state
            expected = (self.config.num_features, *self.config.feature_map_size)
            if tuple(prepool.shape[1:]) != expected:
                raise ValueError(
                    f"pixel_values of shape {tuple(pixel_values.shape)} give a pre-pool map of shape "
                    f"{tuple(prepool.shape[1:])}, but the classifier was sized for {expected}, the map of "
                    f"image_size={self.config.image_size} inputs."
                )
            features = torch.flatten(prepool, 1)
        else:
            features = outputs.pooler_output
        logits = self.classifier(features)
        loss = self.loss_function(labels, logits, self.config) if labels is not None else None

        if not return_dict:
            output = (logits,) + ((outputs.hidden_states,) if outputs.hidden_states is not None else ())
            return ((loss,) + output) if loss is not None else output
        return ImageClassifierOutputWithNoAttention(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


class ContrastiveResNetBackbone(BackboneMixin, ContrastiveResNetPreTrainedModel):
    """The encoder as a transformers backbone (`AutoBackbone`), e.g. the `backbone_config` of a detection or
    segmentation model: the feature maps of the stem and stages that `config.out_features` names, `[B, C_i, H_i, W_i]`
    each. Loads the weights of a saved `ContrastiveResNetModel` (the projection head goes unused)."""

    has_attentions = False

    def __init__(self, config: ContrastiveResNetConfig):
        super().__init__(config)
        self.resnet = ContrastiveResNetModel(config)
        expansion = config.bottleneck_expansion if config.block_type == "bottleneck" else 1
        self.num_features = [config.stem_channels] + [size * expansion for size in config.hidden_sizes]
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        input_features: torch.Tensor | None = None,
        **kwargs,
    ) -> BackboneOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, num_channels, height, width)`):
                The (normalised) inputs; or `input_features` (spectrograms), as for [`ContrastiveResNetModel`].
            output_hidden_states (`bool`, *optional*):
                Also return the stem output and every stage output.
            return_dict (`bool`, *optional*):
                Return a [`BackboneOutput`] instead of a `(feature_maps[, hidden_states])` tuple.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        hidden_states = self.resnet(
            pixel_values, output_hidden_states=True, return_dict=True, input_features=input_features
        ).hidden_states
        feature_maps = tuple(
            hidden for name, hidden in zip(self.stage_names, hidden_states) if name in self.out_features
        )
        if not return_dict:
            return (feature_maps, hidden_states) if output_hidden_states else (feature_maps,)
        return BackboneOutput(feature_maps=feature_maps, hidden_states=hidden_states if output_hidden_states else None)


__all__ = [
    "ContrastiveResNetBackbone",
    "ContrastiveResNetForClassification",
    "ContrastiveResNetModel",
    "ContrastiveResNetOutput",
    "ContrastiveResNetPreTrainedModel",
]
