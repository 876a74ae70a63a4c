"""Image processor: PIL images to [0, 1] tensors for the viewmaker, with the statistics to normalise its views."""

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import PILImageResampling

# CIFAR-10 statistics of the original code (docs/method.md §4.1).
CIFAR10_MEAN = [0.491, 0.482, 0.446]
CIFAR10_STD = [0.247, 0.243, 0.261]


class ViewmakerImageProcessor(PilBackend):
    r"""
    Turns images into `pixel_values` of shape `[batch, num_channels, height, width]`.

    The viewmaker perturbs pixels in [0, 1], and the dataset normalisation comes *after* it (docs/method.md §4.1). So
    the processor saved with a viewmaker has `do_normalize=False`, while the one saved with the encoder (which sees
    normalised views) has `do_normalize=True`; both hold the same `image_mean` / `image_std`, which training uses to
    normalise the views. Use [`ViewmakerImageProcessor.normalize_tensor`] for batches already on a device.

    Args:
        num_channels (`int`, defaults to 3):
            3 converts every image to RGB, 1 to greyscale (mode "L"), whatever its stored mode.
        size (`dict`, defaults to `{"height": 32, "width": 32}`), do_resize, resample, do_rescale, rescale_factor,
        do_normalize (defaults to `False`), image_mean, image_std (default: CIFAR-10's):
            As in every transformers image processor.
    """

    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BILINEAR
    size = {"height": 32, "width": 32}
    image_mean = CIFAR10_MEAN
    image_std = CIFAR10_STD
    do_resize = True
    do_rescale = True
    do_normalize = False
    do_convert_rgb = False

    def __init__(self, num_channels: int = 3, **kwargs):
        if num_channels not in (1, 3):
            raise ValueError(f"num_channels must be 1 (greyscale) or 3 (RGB), got {num_channels}")
        self.num_channels = num_channels
        super().__init__(**kwargs)

    def process_image(self, image, **kwargs) -> np.ndarray:
        if isinstance(image, Image.Image):
            # Any stored mode (P, RGBA, I;16, CMYK, ...) becomes the one channel layout the model was built for.
            image = image.convert("RGB" if self.num_channels == 3 else "L")
        return super().process_image(image, **kwargs)

    def normalize_tensor(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(pixel_values - image_mean) / image_std` per channel, for a `[batch, C, ...]` tensor on any device."""
        return normalize_channels(pixel_values, self.image_mean, self.image_std)


def normalize_channels(
    pixel_values: torch.Tensor, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """`(pixel_values - mean) / std` per channel of a `[batch, C, ...]` tensor, in its dtype and on its device: the
    one normalisation of images, wherever it happens (after the viewmaker in training, in the linear probe, in the
    corruption benchmark), with the statistics of the processor saved with the encoder."""
    mean = torch.as_tensor(mean, dtype=pixel_values.dtype, device=pixel_values.device)
    std = torch.as_tensor(std, dtype=pixel_values.dtype, device=pixel_values.device)
    if not pixel_values.shape[1] == mean.numel() == std.numel():
        raise ValueError(
            f"inputs have {pixel_values.shape[1]} channels but the normalisation has {mean.numel()} means and "
            f"{std.numel()} stds"
        )
    shape = (1, -1) + (1,) * (pixel_values.ndim - 2)
    return (pixel_values - mean.view(shape)) / std.view(shape)


__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "ViewmakerImageProcessor", "normalize_channels"]
