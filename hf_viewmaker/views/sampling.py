"""The uniform and normal draws behind every random parameter of the expert views, shared by the image, spectrogram,
waveform and IMU views so that all of them consume a generator the same way."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def uniform(
    shape: Sequence[int],
    generator: torch.Generator | None,
    device: torch.device,
    low: float = 0.0,
    high: float = 1.0,
) -> torch.Tensor:
    """float32 samples of U[low, high) of `shape` on `device`.

    With a generator they are drawn on the generator's device and then moved, so that one CPU generator gives the same
    views on every device; a generator on the data's device avoids the (small) copy. Without one they come from the
    global RNG of `device`.
    """
    source = generator.device if generator is not None else device
    u = torch.rand(tuple(shape), generator=generator, device=source).to(device)
    if low == 0.0 and high == 1.0:
        return u  # U[0, 1) as drawn: no rescaling kernels
    return low + (high - low) * u


def normal(
    shape: Sequence[int],
    generator: torch.Generator | None,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Samples of N(0, 1) of `shape` and `dtype` on `device`, drawn on the generator's device as `uniform` draws."""
    source = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, device=source, dtype=dtype).to(device)
