"""The viewmaker network (Tamkin, Wu, Goodman, ICLR 2021) as a transformers model.

Self-contained on purpose: this file and `configuration_viewmaker.py` are copied next to the weights for
`trust_remote_code=True` loading, where `hf_viewmaker` may not be installed. Module names follow the authors'
original code (`conv1.conv2d`, `in1`, `res1`, `deconv1`, ...), so their weights load key for key.
"""

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import create_selective_checkpoint_contexts
from transformers import PreTrainedModel
from transformers.utils import ModelOutput, logging

from .configuration_viewmaker import ViewmakerConfig

logger = logging.get_logger(__name__)

# The original's constant that keeps the L1 rescaling finite (docs/method.md §1, `get_delta`).
_BUDGET_EPS = 1e-4
# The first and last convolutions are 9 wide: reflection padding of 4 needs more than 4 samples per dimension.
_MIN_SPATIAL_SIZE = 5
_BOTTLENECK_CHANNELS = 128


@dataclass
class ViewmakerOutput(ModelOutput):
    """
    Output of [`ViewmakerModel`].

    Args:
        views (`torch.FloatTensor` of the input's shape):
            The input plus the bounded perturbation, clamped to [0, 1] when `config.clamp` is set.
        perturbation (`torch.FloatTensor` of the input's shape):
            The perturbation that was added, before clamping (in the input domain, also when
            `config.frequency_domain` bounds it in the DCT domain).
    """

    views: torch.FloatTensor | None = None
    perturbation: torch.FloatTensor | None = None


def _layer_types(spatial_dims: int) -> tuple[type[nn.Module], type[nn.Module], type[nn.Module]]:
    if spatial_dims == 2:
        return nn.Conv2d, nn.ReflectionPad2d, nn.InstanceNorm2d
    return nn.Conv1d, nn.ReflectionPad1d, nn.InstanceNorm1d


class ViewmakerConvLayer(nn.Module):
    """Reflection padding of `kernel_size // 2`, then a biased convolution; optionally a nearest-neighbour upsampling
    first. The original's `ConvLayer` and `UpsampleConvLayer` are this one layer with and without `output_size`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, spatial_dims: int):
        super().__init__()
        conv, pad, _ = _layer_types(spatial_dims)
        self.reflection_pad = pad(kernel_size // 2)
        # Named `conv2d` also in 1-D, to keep the original's state-dict keys.
        self.conv2d = conv(in_channels, out_channels, kernel_size, stride)

    def forward(self, hidden_states: torch.Tensor, output_size: torch.Size | None = None) -> torch.Tensor:
        if output_size is not None:
            # Upsampling to the size of the matching downsampling level (instead of the original's fixed x2) equals
            # x2 for sizes divisible by 4 and lets any other size come back to the input's shape.
            hidden_states = F.interpolate(hidden_states, size=output_size, mode="nearest")
        return self.conv2d(self.reflection_pad(hidden_states))


class ViewmakerResidualBlock(nn.Module):
    """conv3 -> InstanceNorm -> ReLU -> conv3 -> InstanceNorm, plus identity; no activation after the sum
    (docs/method.md §1). Always ReLU, whatever `config.activation` says, as in the original."""

    def __init__(self, channels: int, spatial_dims: int):
        super().__init__()
        _, _, norm = _layer_types(spatial_dims)
        self.conv1 = ViewmakerConvLayer(channels, channels, 3, 1, spatial_dims)
        self.in1 = norm(channels, affine=True)
        self.conv2 = ViewmakerConvLayer(channels, channels, 3, 1, spatial_dims)
        self.in2 = norm(channels, affine=True)
        self.act = nn.ReLU()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        out = self.act(self.in1(self.conv1(hidden_states)))
        return self.in2(self.conv2(out)) + hidden_states


@functools.lru_cache(maxsize=32)
def _dct_matrices(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The unnormalised DCT-II matrix (`torch_dct.dct(norm=None)`: X_k = 2 sum_n x_n cos(pi k (2n+1) / 2N)) and its
    exact inverse, built in float64 and cached per size and device."""
    k = torch.arange(size, dtype=torch.float64)
    cosines = torch.cos(math.pi * k[:, None] * (2 * k[None, :] + 1) / (2 * size))
    forward = 2 * cosines
    weights = torch.ones(size, dtype=torch.float64)
    weights[0] = 0.5
    inverse = (cosines * weights[:, None]).T / size
    return forward.to(device, torch.float32), inverse.to(device, torch.float32)


def _apply_dct(x: torch.Tensor, spatial_dims: int, inverse: bool) -> torch.Tensor:
    """(Inverse) DCT-II over the last `spatial_dims` dimensions, in float32."""
    out = x.float()
    for dim in range(-spatial_dims, 0):
        matrix = _dct_matrices(out.shape[dim], out.device)[1 if inverse else 0]
        out = torch.movedim(torch.movedim(out, dim, -1) @ matrix.T, -1, dim)
    return out


def convolution_saving_checkpoint_context():
    """A ``context_fn`` for ``torch.utils.checkpoint.checkpoint`` (selective activation checkpointing) that keeps the
    convolutions' outputs and recomputes everything else in backward: padding, upsampling, InstanceNorm, activations
    and the noise concatenation. In the viewmaker those hold most of the saved memory and take little of the compute
    (benchmarks/RESULTS.md)::

        model.activation_checkpointing_enable(
            {"use_reentrant": False, "context_fn": convolution_saving_checkpoint_context}
        )
    """
    return create_selective_checkpoint_contexts([torch.ops.aten.convolution.default])


class ViewmakerPreTrainedModel(PreTrainedModel):
    config_class = ViewmakerConfig
    config: ViewmakerConfig
    base_model_prefix = "viewmaker"
    main_input_name = "pixel_values"
    _no_split_modules = ["ViewmakerResidualBlock"]
    supports_gradient_checkpointing = True

    def _init_weights(self, module: nn.Module) -> None:
        # The original uses PyTorch's default init (docs/method.md §1); transformers' generic normal(0, 0.02) would
        # silently change the starting point of the adversarial game.
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.InstanceNorm1d, nn.InstanceNorm2d)):
            module.reset_parameters()

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


class ViewmakerModel(ViewmakerPreTrainedModel):
    """
    The viewmaker: a style-transfer-like residual network that maps an input and uniform noise to a perturbation
    bounded by `config.distortion_budget`, and returns the input plus that perturbation as a new view
    (docs/method.md §1). Every call draws fresh noise, so two calls give two different views of the same input.

    The layers are those of the original: a 9-wide conv to 32 channels, two stride-2 convs to 64 and 128, one
    residual block per `num_res_blocks` (each after concatenating one noise channel, so 129, 130, ... channels),
    two nearest-upsampling convs back to 64 and 32 channels and a 9-wide conv to `num_channels`; reflection
    padding and affine InstanceNorm throughout. Only the residual blocks that run are built.
    """

    # Rejecting NaN / inf inputs reads them on the host, a sync per call: compiled code skips it, and training loops
    # whose loss guard catches non-finite inputs anyway set this to False.
    check_input_values = True

    def __init__(self, config: ViewmakerConfig):
        super().__init__(config)
        # Set by `activation_checkpointing_enable()`: the network is recomputed in backward instead of keeping its
        # activations (all of it, or what a `context_fn` such as `convolution_saving_checkpoint_context` does not
        # keep). The noise is drawn before the network runs, so the recomputation sees the same noise whichever
        # generator it came from.
        self.gradient_checkpointing = False
        self._warned_about_range = False
        dims, channels = config.spatial_dims, config.num_channels
        _, _, norm = _layer_types(dims)
        self.act = nn.ReLU() if config.activation == "relu" else nn.LeakyReLU()
        self.conv1 = ViewmakerConvLayer(channels + 1, 32, 9, 1, dims)
        self.in1 = norm(32, affine=True)
        self.conv2 = ViewmakerConvLayer(32, 64, 3, 2, dims)
        self.in2 = norm(64, affine=True)
        self.conv3 = ViewmakerConvLayer(64, _BOTTLENECK_CHANNELS, 3, 2, dims)
        self.in3 = norm(_BOTTLENECK_CHANNELS, affine=True)
        for i in range(1, config.num_res_blocks + 1):
            self.add_module(f"res{i}", ViewmakerResidualBlock(_BOTTLENECK_CHANNELS + i, dims))
        self.deconv1 = ViewmakerConvLayer(_BOTTLENECK_CHANNELS + config.num_res_blocks, 64, 3, 1, dims)
        self.in4 = norm(64, affine=True)
        self.deconv2 = ViewmakerConvLayer(64, 32, 3, 1, dims)
        self.in5 = norm(32, affine=True)
        self.deconv3 = ViewmakerConvLayer(32, channels, 9, 1, dims)
        self.post_init()

    @property
    def residual_blocks(self) -> list[ViewmakerResidualBlock]:
        return [getattr(self, f"res{i}") for i in range(1, self.config.num_res_blocks + 1)]

    def _check_input(self, pixel_values: torch.Tensor) -> None:
        config = self.config
        layout = "height, width" if config.spatial_dims == 2 else "time"
        expected = f"[batch, {config.num_channels}, {layout}]"
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(
                f"pixel_values must be a torch.Tensor of shape {expected}, got a {type(pixel_values).__name__} "
                "(use torch.as_tensor)."
            )
        if not pixel_values.is_floating_point():
            raise TypeError(
                f"pixel_values must be floating point, got {pixel_values.dtype}"
                + (": images are [0, 1] pixels, e.g. `uint8_images / 255`." if config.clamp else ".")
            )
        if pixel_values.ndim != config.spatial_dims + 2:
            raise ValueError(f"pixel_values must have shape {expected}, got shape {tuple(pixel_values.shape)}.")
        if pixel_values.shape[1] != config.num_channels:
            raise ValueError(
                f"pixel_values has {pixel_values.shape[1]} channels (shape {tuple(pixel_values.shape)}), but this "
                f"viewmaker was built for num_channels={config.num_channels}."
            )
        if pixel_values.shape[0] == 0:
            raise ValueError(f"pixel_values is an empty batch (shape {tuple(pixel_values.shape)}).")
        net_size = config.downsample_size or tuple(pixel_values.shape[2:])
        if min(net_size) < _MIN_SPATIAL_SIZE:
            raise ValueError(
                f"pixel_values of shape {tuple(pixel_values.shape)} is too small: the viewmaker network runs at "
                f"spatial size {tuple(net_size)} and needs at least {_MIN_SPATIAL_SIZE} along every spatial dimension."
            )
        if self.check_input_values and not torch.compiler.is_compiling():
            # One read of the inputs' range serves both checks (NaN and inf make it non-finite).
            low, high = torch.stack(torch.aminmax(pixel_values.detach())).float().tolist()
            if not math.isfinite(low) or not math.isfinite(high):
                raise ValueError(f"pixel_values of shape {tuple(pixel_values.shape)} contains NaN or inf values.")
            if config.clamp and low >= 0 and high > 1:
                raise ValueError(
                    f"pixel_values ranges over [{low:g}, {high:g}], but clamp=True makes views of [0, 1] pixels: "
                    "scale the inputs to [0, 1] (e.g. `/ 255`)."
                )
            if config.clamp and low < 0 and not self._warned_about_range:
                # Spectrogram viewmakers saved before clamping followed the domain were clamped in training too.
                logger.warning(
                    f"pixel_values ranges over [{low:g}, {high:g}] and this viewmaker clamps its views to [0, 1] "
                    "(clamp=True): right for [0, 1] images, not for z-scored inputs"
                )
                self._warned_about_range = True

    def _noise_shapes(self, pixel_values: torch.Tensor) -> list[tuple[int, ...]]:
        """One map at the network's full resolution, then one at the bottleneck per residual block (after two
        stride-2 convolutions, ``(n - 1) // 2 + 1`` twice)."""
        full_size = tuple(self.config.downsample_size or pixel_values.shape[2:])
        bottleneck = tuple((((n - 1) // 2 + 1) - 1) // 2 + 1 for n in full_size)
        return [(pixel_values.shape[0], 1, *size) for size in [full_size] + [bottleneck] * self.config.num_res_blocks]

    def draw_noise(self, pixel_values: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """The noise maps of a call on `pixel_values`, in the original's order (the full-resolution map, then the
        residual blocks' maps). Drawn in float32 whatever the compute dtype, so a seed gives the same noise as the
        original's `torch.rand`.

        The network normalises per example, so the maps of several calls, concatenated along the batch, may be given
        to one call on the concatenated inputs (`forward(noise=...)`): its views are those of the separate calls, and
        how a caller batches its calls does not change what the generator draws."""
        return [
            torch.rand(shape, generator=generator, device=pixel_values.device, dtype=torch.float32)
            for shape in self._noise_shapes(pixel_values)
        ]

    @staticmethod
    def _with_noise_channel(hidden_states: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return torch.cat((hidden_states, noise.to(hidden_states.dtype)), dim=1)

    def _network(self, inputs: torch.Tensor, *noise: torch.Tensor) -> torch.Tensor:
        """The unbounded network output, of the shape of `inputs`, given the noise maps of `draw_noise`."""
        hidden = self.act(self.in1(self.conv1(self._with_noise_channel(inputs, noise[0]))))
        half_resolution = self.act(self.in2(self.conv2(hidden)))
        hidden = self.act(self.in3(self.conv3(half_resolution)))
        for block, block_noise in zip(self.residual_blocks, noise[1:]):
            hidden = block(self._with_noise_channel(hidden, block_noise))
        hidden = self.act(self.in4(self.deconv1(hidden, output_size=half_resolution.shape[2:])))
        hidden = self.act(self.in5(self.deconv2(hidden, output_size=inputs.shape[2:])))
        return self.deconv3(hidden)

    def _bound(self, raw: torch.Tensor, budget: float) -> torch.Tensor:
        """Map the network output to a perturbation within `budget`, per example (see `ViewmakerConfig`)."""
        delta = torch.tanh(raw)
        if self.config.budget_norm == "linf":
            return budget * delta
        dims = tuple(range(1, delta.ndim))
        if self.config.budget_norm == "l1":
            magnitude = delta.abs().mean(dims, keepdim=True)
        else:
            magnitude = delta.square().mean(dims, keepdim=True).sqrt()
        return delta * budget / (magnitude + _BUDGET_EPS)

    def _resize(self, x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        mode = "bilinear" if self.config.spatial_dims == 2 else "linear"
        return F.interpolate(x, size=size, mode=mode)

    def forward(
        self,
        pixel_values: torch.Tensor,
        generator: torch.Generator | None = None,
        distortion_budget: float | None = None,
        return_dict: bool | None = None,
        noise: Sequence[torch.Tensor] | None = None,
        **kwargs,
    ) -> ViewmakerOutput | tuple[torch.Tensor, torch.Tensor]:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, num_channels, height, width)`, or
                `(batch, num_channels, time)` when `config.spatial_dims == 1`):
                The inputs to make views of: [0, 1] pixels for images (normalise *after* the viewmaker), z-scored
                log-mel or sensor spectrograms otherwise. Any spatial size of at least 5.
            generator (`torch.Generator`, *optional*):
                Source of the noise, on the input's device, for reproducible views that leave the global RNG alone.
                Without it the noise comes from the global RNG, in the original's order: one full-resolution map,
                then one bottleneck map per residual block.
            distortion_budget (`float`, *optional*):
                The budget of this call, e.g. from a schedule during training; defaults to `config.distortion_budget`.
            return_dict (`bool`, *optional*):
                Return a [`ViewmakerOutput`] instead of a `(views, perturbation)` tuple.
            noise (sequence of `torch.FloatTensor`, *optional*):
                The noise maps to use instead of drawing them (`generator` is then unused), as `draw_noise` makes them
                for `pixel_values`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        self._check_input(pixel_values)
        spatial_size = tuple(pixel_values.shape[2:])
        inputs = pixel_values
        if self.config.downsample_size is not None:
            inputs = self._resize(inputs, self.config.downsample_size)
        if self.config.frequency_domain:
            inputs = _apply_dct(inputs, self.config.spatial_dims, inverse=False)
        # Half-precision or float64 inputs meet the network in its own dtype; the views keep the inputs' dtype.
        inputs = inputs.to(self.dtype)

        if noise is None:
            noise = self.draw_noise(pixel_values, generator)
        elif [tuple(m.shape) for m in noise] != self._noise_shapes(pixel_values):
            raise ValueError(
                f"noise must be maps of shapes {self._noise_shapes(pixel_values)} (see `draw_noise`), got "
                f"{[tuple(m.shape) for m in noise]}"
            )
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            raw = self._gradient_checkpointing_func(self._network, inputs, *noise)
        else:
            raw = self._network(inputs, *noise)

        # The budget is a ratio of sums over the whole example: reduced precision would make it drift.
        with torch.autocast(device_type=raw.device.type, enabled=False):
            budget = self.config.distortion_budget if distortion_budget is None else distortion_budget
            perturbation = self._bound(raw.float(), budget)
            if self.config.frequency_domain:
                perturbation = _apply_dct(perturbation, self.config.spatial_dims, inverse=True)
            if self.config.downsample_size is not None:
                perturbation = self._resize(perturbation, spatial_size)
            views = pixel_values.float() + perturbation
            if self.config.clamp:
                views = views.clamp(0.0, 1.0)
        views, perturbation = views.to(pixel_values.dtype), perturbation.to(pixel_values.dtype)

        if not return_dict:
            return views, perturbation
        return ViewmakerOutput(views=views, perturbation=perturbation)


__all__ = ["ViewmakerModel", "ViewmakerOutput", "ViewmakerPreTrainedModel", "convolution_saving_checkpoint_context"]
