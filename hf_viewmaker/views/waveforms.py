"""The "waveform" expert views of the speech baselines (docs/method.md §4.2): a random crop and white noise, batched.

The original (``WavformAugmentation(crop_and_noise_only=True)`` in ``src/datasets/librispeech.py``) applied two
transforms to each raw waveform, in a random order (``random.shuffle`` of the two):

* ``AudioCropAug(scale=(0.08, 1.0))``: ``crop = int(U(0.08, 1) * n)`` samples from a start drawn uniformly from
  ``{0, ..., n - crop - 1}``, kept in place; everything outside is zeroed and the length stays n (no time-stretch);
* ``AudioNoiseAug(scale=1)``: ``irfft`` of ``n // 2 + 1`` real N(0, 1) spectrum coefficients (imaginary parts 0),
  added. With numpy's 1/n inverse normalisation each sample of that noise has standard deviation ``1 / sqrt(n)``
  (0.0026 for the 150,526-sample clips, 0.0079 for a 1 s clip at 16 kHz; docs/method.md §4.2, checked numerically
  against the original function). Because the
  coefficients are real, the noise is also mirror-symmetric, ``noise[t] == noise[n - t]``; it is otherwise white.

`WaveformCropNoiseViews` draws the same per example for a [B, T] batch: masks from ``arange`` comparisons and one
``torch.fft.irfft`` over the batch.
"""

from __future__ import annotations

from math import inf

import torch
from torch import nn

from .sampling import normal, uniform


class WaveformCropNoiseViews(nn.Module):
    """A random in-place crop and additive white noise, in a random order per example (docs/method.md §4.2).

    Args:
        crop_scale: range of the kept fraction of each waveform, within (0, 1] (§4.2: (0.08, 1.0)).
        noise_scale: standard deviation of the noise's real spectrum coefficients (§4.2: 1), so the noise of an
            n-sample waveform has a standard deviation of ``noise_scale / sqrt(n)`` per sample. 0 disables the noise.

    The two orders differ in whether the noise outside the crop survives: crop-then-noise leaves noise over the
    whole waveform, noise-then-crop zeroes it outside the crop too.

    Deviations from the original, which augmented each utterance at its own length *before* fitting it to the
    150,526-sample clip (docs/method.md §4.2):

    * this works on a batch of already-fitted clips, so by default n = T (the padded length). Pass `lengths` (the
      number of real samples at the start of each row, the rest being zero padding) to crop within, and scale and
      confine the noise to, each example's real samples as the original did for short utterances. For utterances
      longer than the clip, the original cropped a fraction of the whole utterance and then kept its first or last
      150,526 samples; here the fraction is of the fitted clip.
    * With `lengths`, the noise is drawn at length T and rescaled by sqrt(T / length) to the original's
      ``1 / sqrt(length)`` standard deviation, so its mirror symmetry is about T / 2 rather than about length / 2.
      For odd n the original transformed n + 1 coefficients and dropped the last sample (standard deviation
      1 / sqrt(n + 1)); here ``irfft(..., n=T)`` gives 1 / sqrt(n) directly.

    Randomness: per example, 3 uniforms (crop fraction, crop start, order) and T // 2 + 1 normals, from the given
    ``torch.Generator`` (on its own device, then moved to the data's) or from the global RNG of the data's device.
    """

    def __init__(self, crop_scale: tuple[float, float] = (0.08, 1.0), noise_scale: float = 1.0):
        super().__init__()
        try:
            low, high = (float(v) for v in crop_scale)
        except (TypeError, ValueError):
            raise ValueError(f"crop_scale must be a (min, max) pair of numbers, got {crop_scale!r}") from None
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {crop_scale!r}")
        if isinstance(noise_scale, bool) or not isinstance(noise_scale, (int, float)) or not 0 <= noise_scale < inf:
            raise ValueError(f"noise_scale must be a finite number >= 0, got {noise_scale!r}")
        self.crop_scale = (low, high)
        self.noise_scale = float(noise_scale)

    def extra_repr(self) -> str:
        return f"crop_scale={self.crop_scale}, noise_scale={self.noise_scale}"

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """
        Args:
            x: floating-point waveforms [B, T] on any device.
            generator: optional source of randomness.
            lengths: optional integer tensor [B]: the number of real samples at the start of each row of `x` (the
                rest is padding). Values are clamped to [1, T] (not checked, to avoid a device sync). Default: T.

        Returns:
            The views, [B, T], same dtype and device as `x`.
        """
        if not torch.is_tensor(x) or x.ndim != 2 or not x.is_floating_point():
            raise ValueError(
                "x must be a floating-point [B, T] waveform batch, got "
                + (f"{x.dtype} of shape {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__)
            )
        batch, n_samples = x.shape
        if lengths is not None:
            if not torch.is_tensor(lengths):
                raise ValueError(f"lengths must be an integer tensor of shape ({batch},), got {type(lengths).__name__}")
            if lengths.shape != (batch,) or lengths.is_floating_point() or lengths.is_complex():
                raise ValueError(
                    f"lengths must be an integer tensor of shape ({batch},), got {lengths.dtype} of shape "
                    f"{tuple(lengths.shape)}"
                )
        # irfft has no half-precision CPU kernel, so the noise and masks are computed in float32 (float64 stays).
        work_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        device = x.device
        if lengths is None:
            n = torch.full((batch,), float(n_samples), dtype=work_dtype, device=device)
        else:
            n = lengths.to(device=device, dtype=work_dtype).clamp(1, n_samples)

        u = uniform((3, batch), generator, device).to(work_dtype)
        low, high = self.crop_scale
        # The clamps only catch float rounding of u * n up to n for u just below 1.
        crop = torch.floor((low + (high - low) * u[0]) * n).clamp(max=n)
        # The original's start ~ U{0, ..., n - crop - 1} (np.arange(n - crop)); start 0 when the crop is everything.
        starts = (n - crop).clamp(min=1)
        start = torch.minimum(torch.floor(u[1] * starts), starts - 1)
        crop_first = u[2] < 0.5  # random.shuffle of two transforms: either order with probability 1/2

        # Integer positions, exact at any length.
        t = torch.arange(n_samples, device=device)
        start, end, length = start.long()[:, None], (start + crop).long()[:, None], n.long()[:, None]
        kept = ((t >= start) & (t < end)).to(work_dtype)  # [B, T]
        out = x.to(work_dtype) * kept
        if self.noise_scale > 0:
            spectrum = normal((batch, n_samples // 2 + 1), generator, device, work_dtype)
            noise = torch.fft.irfft(spectrum * self.noise_scale, n=n_samples, dim=-1)  # std 1/sqrt(T)
            # std 1/sqrt(length) inside each example's real samples, none in its padding.
            noise = noise * torch.sqrt(n_samples / n)[:, None] * (t < length)
            # Noise-then-crop loses the noise outside the crop; crop-then-noise keeps it.
            out = out + noise * torch.where(crop_first[:, None], 1.0, kept)
        return out.to(x.dtype)
