"""Handcrafted ("expert") views of the paper's baselines, batched on the training device (docs/method.md §4).

Each view is an `nn.Module` whose ``forward(x, generator=None)`` takes a whole batch on any device and returns the
views with independent random parameters per example, reproducible with a seeded ``torch.Generator``:

* `SimCLRImageViews`: the SimCLR CIFAR-10 recipe (§4.1) on [B, C, H, W] images in [0, 1];
* `SpectralMaskingViews`: SpecAugment-like band masking plus noise, for the speech "spectral" views (§4.2) and
  Pamap2 (§4.4);
* `WaveformCropNoiseViews`: random crop plus white noise for speech "waveform" views (§4.2);
* `ImuViews`: random rotation of channel triplets, per-channel scaling and jitter of raw IMU windows, the
  time-domain half of the sensor ``imu`` views (docs/method.md §4.6).
"""

from .images import SimCLRImageViews
from .sensors import ImuViews
from .spectrograms import SpectralMaskingViews
from .waveforms import WaveformCropNoiseViews

__all__ = ["ImuViews", "SimCLRImageViews", "SpectralMaskingViews", "WaveformCropNoiseViews"]
