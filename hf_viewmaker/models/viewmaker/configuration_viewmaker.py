"""Viewmaker network configuration.

Self-contained on purpose: this file is copied next to the weights for `trust_remote_code=True` loading, where
`hf_viewmaker` may not be installed.
"""

from typing import ClassVar

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig


@strict
class ViewmakerConfig(PreTrainedConfig):
    r"""
    Configuration of a [`ViewmakerModel`]: the stochastic, budget-bounded view generator of Tamkin et al., 2021
    (docs/method.md §1). The defaults build the network the paper uses on CIFAR-10.

    Args:
        num_channels (`int`, defaults to 3):
            Channels of the input and of the views (3 for images, 1 for log-mel spectrograms, 52 for Pamap2).
        distortion_budget (`float`, defaults to 0.05):
            The budget epsilon. Its meaning depends on `budget_norm`.
        budget_norm (`str`, defaults to `"l1"`):
            How the perturbation delta is bounded, per example, over all its C x H x W entries:
            - `"l1"` (the paper's Algorithm 1): delta = tanh(y) rescaled so that mean|delta| equals epsilon, an equality
              (a projection onto the L1 sphere of radius epsilon * C * H * W), not a ball. Entries may exceed 1.
            - `"l2"`: delta = tanh(y) rescaled so that its root mean square equals epsilon (the L2 sphere of radius
              epsilon * sqrt(C * H * W)), so the same epsilon gives perturbations of similar per-entry size as `"l1"`.
            - `"linf"`: delta = epsilon * tanh(y), a box: every entry satisfies |delta| < epsilon.
        activation (`str`, defaults to `"relu"`):
            Activation of the trunk layers, `"relu"` or `"leaky_relu"` (slope 0.01). Residual blocks always use ReLU,
            as in the original.
        clamp (`bool`, defaults to `True`):
            Clamp the views to [0, 1] (images). The paper clamps CIFAR-10 views; the original code forgot to
            (docs/method.md §1), and audio and sensor inputs are never clamped.
        frequency_domain (`bool`, defaults to `False`):
            Run the network on the unnormalised DCT-II of the input, bound the perturbation in that domain and add
            its inverse DCT to the untouched input (docs/method.md §1).
        num_res_blocks (`int`, defaults to 3):
            Residual blocks at the bottleneck, 0 to 5. Each is preceded by one extra noise channel.
        downsample_to (`int` or `list[int]`, *optional*):
            Compute the perturbation at this spatial size (bilinear/linear resize) and resize it back, for large
            inputs. `None` runs at full resolution. The budget bounds the perturbation at the network's size, as in
            the original; resizing it back smooths it, so at full size its mean magnitude falls somewhat below the
            budget (by about 10% for 32x32 made at 16x16 under the L1 budget) and never above it.
        spatial_dims (`int`, defaults to 2):
            2 for images and spectrograms ([B, C, H, W]); 1 for raw 1-D signals such as sensor windows or waveforms
            ([B, C, T]), with the same network built from 1-D layers.

    Example:

    ```python
    >>> from hf_viewmaker import ViewmakerConfig, ViewmakerModel
    >>> config = ViewmakerConfig(num_channels=1, distortion_budget=0.1, clamp=False)
    >>> model = ViewmakerModel(config)
    ```
    """

    model_type = "viewmaker"
    activations: ClassVar[tuple[str, ...]] = ("relu", "leaky_relu")
    budget_norms: ClassVar[tuple[str, ...]] = ("l1", "l2", "linf")
    max_res_blocks: ClassVar[int] = 5

    num_channels: int = 3
    distortion_budget: float | int = 0.05  # an int is taken as that float (see `__post_init__`)
    budget_norm: str = "l1"
    activation: str = "relu"
    clamp: bool = True
    frequency_domain: bool = False
    num_res_blocks: int = 3
    downsample_to: int | list[int] | tuple[int, ...] | None = None
    spatial_dims: int = 2

    def __post_init__(self, **kwargs):
        if isinstance(self.downsample_to, tuple):
            self.downsample_to = list(self.downsample_to)
        # A whole number where a float is meant (`distortion_budget=1`, or `1` in a YAML recipe) is that float.
        if isinstance(self.distortion_budget, int) and not isinstance(self.distortion_budget, bool):
            self.distortion_budget = float(self.distortion_budget)
        # Checked here as well as by `@strict` (which wraps errors in its own type) so that a bad value raises a
        # plain `ValueError` naming the field at construction.
        self.validate_values()
        super().__post_init__(**kwargs)

    def validate_values(self):
        """Check every field's value; `@strict` also runs this before saving."""
        if self.num_channels < 1:
            raise ValueError(f"num_channels must be a positive integer, got {self.num_channels}.")
        if not 0 < self.distortion_budget < float("inf"):
            raise ValueError(f"distortion_budget must be a positive finite number, got {self.distortion_budget}.")
        if self.budget_norm not in self.budget_norms:
            raise ValueError(f"budget_norm must be one of {self.budget_norms}, got {self.budget_norm!r}.")
        if self.activation not in self.activations:
            raise ValueError(f"activation must be one of {self.activations}, got {self.activation!r}.")
        if not 0 <= self.num_res_blocks <= self.max_res_blocks:
            raise ValueError(f"num_res_blocks must be in 0..{self.max_res_blocks}, got {self.num_res_blocks}.")
        if self.spatial_dims not in (1, 2):
            raise ValueError(f"spatial_dims must be 1 or 2, got {self.spatial_dims}.")
        if self.downsample_to is not None:
            sizes = [self.downsample_to] if isinstance(self.downsample_to, int) else self.downsample_to
            if len(sizes) not in (1, self.spatial_dims) or any(s < 1 for s in sizes):
                raise ValueError(
                    f"downsample_to must be a positive int or a list of {self.spatial_dims} positive ints, "
                    f"got {self.downsample_to}."
                )

    @property
    def downsample_size(self) -> tuple[int, ...] | None:
        """`downsample_to` as one size per spatial dimension, or `None`."""
        if self.downsample_to is None:
            return None
        sizes = [self.downsample_to] if isinstance(self.downsample_to, int) else list(self.downsample_to)
        return tuple(sizes * self.spatial_dims if len(sizes) == 1 else sizes)


__all__ = ["ViewmakerConfig"]
