"""Pictures of views: a grid of inputs, views and amplified perturbations, for any of the three domains."""

import numpy as np
import torch
from PIL import Image

# Sensor inputs have dozens of channels; a grid cell shows at most this many of them side by side.
MAX_CHANNEL_TILES = 8


def _to_display(example: torch.Tensor, origin: str) -> np.ndarray:
    """One example ([C, H, W] or [C, T]) as an [h, w] or [h, w, 3] array."""
    example = example.detach().float().cpu()
    if example.ndim == 2:
        # A 1-D multichannel signal: channels as rows, time as columns.
        image = example
    elif example.shape[0] == 3:
        image = example.permute(1, 2, 0)
    else:
        # Greyscale images, spectrograms (1 channel) and sensor spectrograms (52 channels) side by side.
        tiles = [channel.flip(0) if origin == "lower" else channel for channel in example[:MAX_CHANNEL_TILES]]
        image = torch.cat([torch.cat((tile, torch.full((tile.shape[0], 1), float("nan"))), dim=1) for tile in tiles], 1)
        image = image[:, :-1]
    return image.numpy()


def _rescale(array: np.ndarray, symmetric: bool) -> np.ndarray:
    finite = array[np.isfinite(array)]
    if symmetric:
        scale = np.abs(finite).max() if finite.size else 1.0
        return 0.5 + 0.5 * array / (scale or 1.0)
    if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
        return array
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    return (array - low) / ((high - low) or 1.0)


def make_view_grid(
    inputs: torch.Tensor,
    views: torch.Tensor,
    perturbations: torch.Tensor,
    max_examples: int = 8,
    scale: int = 4,
    origin: str = "upper",
) -> Image.Image:
    """A picture with one column per example and three rows: the input, its view, and the perturbation amplified to
    the full grey range (mid-grey is zero).

    Args:
        inputs, views, perturbations: tensors of one shape, `[B, C, H, W]` (images, spectrograms, sensor
            spectrograms) or `[B, C, T]` (raw signals). Images in [0, 1] are drawn as they are; anything else (z-scored
            spectrograms) is min-max scaled per cell. For C other than 3, up to 8 channels are drawn side by side.
        max_examples: columns to draw, from the start of the batch.
        scale: nearest-neighbour magnification of each pixel.
        origin: `"upper"` draws row 0 at the top (images); `"lower"` at the bottom (spectrograms, low frequencies
            down).
    """
    if origin not in ("upper", "lower"):
        raise ValueError(f"origin must be 'upper' or 'lower', got {origin!r}")
    if not inputs.shape == views.shape == perturbations.shape:
        raise ValueError(
            f"inputs, views and perturbations must have one shape, got {tuple(inputs.shape)}, "
            f"{tuple(views.shape)} and {tuple(perturbations.shape)}"
        )
    if inputs.ndim not in (3, 4):
        raise ValueError(f"expected [B, C, H, W] or [B, C, T] tensors, got shape {tuple(inputs.shape)}")
    rows = []
    for tensor, symmetric in ((inputs, False), (views, False), (perturbations, True)):
        cells = [_rescale(_to_display(example, origin), symmetric) for example in tensor[:max_examples]]
        pad_shape = (cells[0].shape[0], 2, *cells[0].shape[2:])
        rows.append(np.concatenate([np.concatenate((c, np.ones(pad_shape)), axis=1) for c in cells], axis=1))
    pad_shape = (2, *rows[0].shape[1:])
    grid = np.concatenate([np.concatenate((row, np.ones(pad_shape)), axis=0) for row in rows], axis=0)
    grid = np.nan_to_num(grid, nan=1.0).clip(0.0, 1.0)
    picture = Image.fromarray((grid * 255).round().astype(np.uint8))
    return picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)


__all__ = ["make_view_grid"]
