"""SpecAugment-like "expert" views: one frequency band and one time band zeroed, then optional Gaussian noise.

These are the expert baselines of the speech "spectral" configs (docs/method.md §4.2) and of Pamap2 (§4.4). The original
used nlpaug's ``FrequencyMaskingAug(mask_factor=M)`` then ``TimeMaskingAug(mask_factor=M)`` per example, which zero
``[f0, f0 + f)`` along the frequency axis with ``f = randint(M)`` (so f ~ U{0, ..., M - 1}) and ``f0 = randint(F - f)``
(so f0 ~ U{0, ..., F - f - 1}), over all time steps and channels, and then the same along the time axis.
`SpectralMaskingViews` draws exactly those, independently per example, for a whole batch at once.

Where the mask goes differs between the two domains, hence two methods:

* Speech (§4.2): the masks are applied to the mel *power* spectrogram, before the log, and the noise (0.25 std in
  normalised units: the original added 0.25 x 12.587 dB before normalising by 12.587) after the log. With the
  project's log-mel front end ``fe`` (``fe.mel_power(waveforms)`` -> [B, 1, n_mels, frames],
  ``fe.to_log_normalized(power)``), the recipe is::

      views = SpectralMaskingViews(max_freq_mask=40, max_time_mask=40, noise_std=0.25)
      power = views.mask(fe.mel_power(waveforms), generator)   # zeros in the power spectrogram...
      x = views.add_noise(fe.to_log_normalized(power), generator)

  ...so a masked bin becomes the floor of its clip after the log (``power_to_db`` with top_db 80 clips it to the
  clip's maximum - 80 dB), not the normalised value 0. Masking after the log instead would fill the bands with the
  dataset mean, a different augmentation.
* Pamap2 (§4.4): both masks (max 20 of the 32 bins) on the already normalised spectrogram, where 0 is the per-channel
  mean, over all 52 channels together, then optionally noise: ``SpectralMaskingViews(20, 20)(x, generator)``
  (``'spectral'``), or with ``noise_std`` for ``'spectral_noise'``. The original's ``'spectral_noise'`` added
  ``0.25 * FEATURE_STDS`` (raw log-power stds, about 0.7 to 1.9) per channel to normalised data; pass those 52 values
  as `noise_std` to reproduce that, or 0.25 for the evidently intended 0.25 std in normalised units.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .sampling import normal, uniform


def _max_mask(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int (the mask width is drawn from [0, {name})), got {value!r}")
    return value


class SpectralMaskingViews(nn.Module):
    """One frequency band and one time band zeroed per example (nlpaug's masking, docs/method.md §4.2/§4.4), plus
    optional additive Gaussian noise.

    Args:
        max_freq_mask: nlpaug's ``mask_factor`` along frequency: band widths are drawn from {0, ..., max - 1}, so 0 or 1
            masks nothing (§4.2 speech: 40; §4.4 Pamap2: 20). At most the number of frequency bins.
        max_time_mask: the same along time (40 for speech, 20 for Pamap2).
        noise_std: standard deviation of the Gaussian noise `add_noise` adds: one number, or one per channel (C
            values, for the original Pamap2 ``'spectral_noise'``; see the module docstring). 0 (the default) adds
            nothing; the speech recipe uses 0.25 (§4.2).

    Randomness: widths, offsets and noise are drawn per example with the given ``torch.Generator`` (on its own device,
    then moved to the data's), or from the global RNG of the data's device without one. `mask` draws 4 uniforms per
    example; `add_noise` one normal per element.
    """

    noise_std: torch.Tensor

    def __init__(self, max_freq_mask: int = 40, max_time_mask: int = 40, noise_std: float | Sequence[float] = 0.0):
        super().__init__()
        self.max_freq_mask = _max_mask("max_freq_mask", max_freq_mask)
        self.max_time_mask = _max_mask("max_time_mask", max_time_mask)
        std = torch.as_tensor(noise_std, dtype=torch.float64)
        if std.ndim > 1 or std.numel() == 0 or not bool(torch.isfinite(std).all()) or bool((std < 0).any()):
            raise ValueError(
                f"noise_std must be a finite number >= 0 or a sequence of them (one per channel), got {noise_std!r}"
            )
        # Not persistent: it is configuration, not state, and a checkpoint should not depend on it.
        self.register_buffer("noise_std", std, persistent=False)

    def extra_repr(self) -> str:
        std = self.noise_std.item() if self.noise_std.ndim == 0 else f"<{self.noise_std.numel()} per-channel values>"
        return f"max_freq_mask={self.max_freq_mask}, max_time_mask={self.max_time_mask}, noise_std={std}"

    def mask(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Zero one frequency band and one time band per example, the same bands for all channels of an example.

        Args:
            x: spectrograms [B, C, F, T] (F frequency bins, T frames) on any device and of any dtype: a mel power
                spectrogram for the speech recipe, a normalised log spectrogram for Pamap2.
            generator: optional source of randomness.

        Returns:
            `x` with the bands set to 0, same shape, dtype and device.
        """
        _check_spectrograms(x)
        n_freq, n_time = x.shape[-2:]
        for name, max_width, bins, axis in (
            ("max_freq_mask", self.max_freq_mask, n_freq, "frequency"),
            ("max_time_mask", self.max_time_mask, n_time, "time"),
        ):
            if max_width > bins:
                # nlpaug's offset draw randint(bins - width) fails for width >= bins; refuse rather than clip.
                raise ValueError(f"{name}={max_width} exceeds the {bins} {axis} bins of x {tuple(x.shape)}")
        u = uniform((4, x.shape[0]), generator, x.device)
        freq_band = _band(u[0], u[1], self.max_freq_mask, n_freq)  # [B, F]
        time_band = _band(u[2], u[3], self.max_time_mask, n_time)  # [B, T]
        masked = freq_band[:, None, :, None] | time_band[:, None, None, :]  # [B, 1, F, T], shared by the channels
        return x.masked_fill(masked, 0)

    def add_noise(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Add N(0, noise_std^2) to every element (per channel when `noise_std` has one value per channel).

        Args:
            x: floating-point spectrograms [B, C, F, T], already normalised (noise_std is in their units).
            generator: optional source of randomness.

        Returns:
            `x` plus the noise (or `x` itself when noise_std is 0), same shape, dtype and device.
        """
        _check_spectrograms(x)
        if not x.is_floating_point():
            raise ValueError(f"x must be floating point to add noise, got {x.dtype}")
        std = self.noise_std
        if std.ndim == 1 and std.numel() != x.shape[1]:
            raise ValueError(
                f"noise_std has {std.numel()} per-channel values but x {tuple(x.shape)} has {x.shape[1]} channels"
            )
        if not bool((std > 0).any()):
            return x
        noise = normal(x.shape, generator, x.device, x.dtype)
        scale = std.to(device=x.device, dtype=x.dtype)
        return x + noise * (scale[:, None, None] if scale.ndim == 1 else scale)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """`mask` then `add_noise`, for already normalised spectrograms (Pamap2, docs/method.md §4.4). The speech recipe
        splits the two around the log (see the module docstring).

        Args:
            x: floating-point normalised spectrograms [B, C, F, T].
            generator: optional source of randomness.

        Returns:
            The views, same shape, dtype and device as `x`.
        """
        return self.add_noise(self.mask(x, generator), generator)


def _check_spectrograms(x: torch.Tensor) -> None:
    if not torch.is_tensor(x) or x.ndim != 4:
        raise ValueError(
            "x must be a [B, C, F, T] spectrogram batch, got "
            + (f"shape {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__)
        )


def _band(width_u: torch.Tensor, offset_u: torch.Tensor, max_width: int, bins: int) -> torch.Tensor:
    """Boolean [B, bins] masks of the bands [f0, f0 + f) with f = floor(width_u * max_width) in {0, ..., max - 1} and
    f0 = floor(offset_u * (bins - f)) in {0, ..., bins - f - 1}: nlpaug's randint draws, from uniforms [B]."""
    # The clamps only catch float32 rounding u * n up to n for u just below 1.
    width = torch.floor(width_u * max_width).clamp(max=max(max_width - 1, 0))
    # bins - width >= 1 because width < max_width <= bins.
    offset = torch.minimum(torch.floor(offset_u * (bins - width)), bins - width - 1)
    positions = torch.arange(bins, device=width_u.device, dtype=width_u.dtype)
    return (positions >= offset[:, None]) & (positions < (offset + width)[:, None])
