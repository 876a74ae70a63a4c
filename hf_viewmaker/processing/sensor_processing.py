"""The Viewmaker paper's sensor front end (docs/method.md §4.4) as a transformers feature extractor.

The original turned each Pamap2 window ``[52, 1000]`` into ``52 x 32 x 32`` with, per channel,

1. ``torchaudio.transforms.Spectrogram(n_fft=63, hop_length=32, power=2)``, whose semantics are: ``win_length =
   n_fft = 63``, a *periodic* Hann window (``torch.hann_window(63)``), ``center=True`` with **reflect** padding of
   ``n_fft // 2 = 31`` samples on both sides, no normalisation, one-sided, so ``n_fft // 2 + 1 = 32`` frequency bins
   and ``1 + T // hop = 32`` frames for T = 1000, and the power ``|X|^2``;
2. ``log(x + 1e-6)``;
3. a z-score per channel, ``(x - mean[c]) / std[c]``, with 52 hard-coded statistics (``FEATURE_MEANS`` /
   ``FEATURE_STDS``), which are not available to us: :meth:`SensorSpectrogramProcessor.fit_statistics` computes them
   from training windows, and they are then saved with the processor (``preprocessor_config.json``).

Optionally (``standardize_windows``, off by default and in the paper) the raw windows are first standardised per
channel, ``(x - window_means[c]) / window_stds[c]``, with statistics of the raw training windows that
:meth:`~SensorSpectrogramProcessor.fit_statistics` also fits. Runs whose viewmaker perturbs the raw windows
(``--viewmaker_input raw``, docs/method.md §4.6) need it, so that the viewmaker's budget means the same in every
channel; :meth:`~SensorSpectrogramProcessor.standardize` makes the viewmaker's inputs and
:meth:`~SensorSpectrogramProcessor.front_end` the encoder's inputs from the views, differentiably.

`SensorSpectrogramProcessor` does the same for a whole batch ``[B, C, T]`` with one ``torch.stft`` on the input's
device, so the training loop can run it on the accelerator.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from transformers.feature_extraction_utils import BatchFeature, FeatureExtractionMixin
from transformers.utils import logging

from .spectral import centered_stft

logger = logging.get_logger(__name__)

__all__ = ["SensorSpectrogramProcessor"]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
    return int(value)


def _positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < math.inf:
        raise ValueError(f"`{name}` must be a finite positive number, got {value!r}")
    return float(value)


class SensorSpectrogramProcessor(FeatureExtractionMixin):
    r"""
    Turns sensor windows ``[B, C, T]`` into the paper's normalised per-channel log-spectrograms ``[B, C, F, frames]``
    (``[B, 52, 32, 32]`` for Pamap2).

    Saved and loaded as ``preprocessor_config.json`` with ``save_pretrained`` / ``from_pretrained``.

    Args:
        num_channels (`int`, defaults to 52): channels of the input (52 for Pamap2).
        n_fft (`int`, defaults to 63), hop_length (`int`, defaults to 32), power (`float`, defaults to 2.0):
            the torchaudio ``Spectrogram`` parameters (periodic Hann window of ``n_fft``, centred, reflect padding,
            one-sided): ``n_fft // 2 + 1`` bins and ``1 + T // hop_length`` frames.
        log_offset (`float`, defaults to 1e-6): added before the log.
        channel_means, channel_stds (`list[float]`, *optional*): per-channel statistics of the log-spectrogram
            over frequency and time. Set them, or compute them with :meth:`fit_statistics`, before normalising.
        do_normalize (`bool`, defaults to `True`): apply the per-channel z-score.
        standardize_windows (`bool`, defaults to `False`): standardise the raw windows per channel before the STFT,
            with `window_means` / `window_stds` (the per-channel mean and std of the raw training windows, over
            windows and time; set by :meth:`fit_statistics`).
    """

    model_input_names = ["input_features"]

    def __init__(
        self,
        num_channels: int = 52,
        n_fft: int = 63,
        hop_length: int = 32,
        power: float = 2.0,
        log_offset: float = 1e-6,
        channel_means: Sequence[float] | None = None,
        channel_stds: Sequence[float] | None = None,
        do_normalize: bool = True,
        standardize_windows: bool = False,
        window_means: Sequence[float] | None = None,
        window_stds: Sequence[float] | None = None,
        **kwargs,
    ):
        # Configs saved while there was also a raw-window representation hold `representation` ("spectrogram" in
        # every sensor processor trained so far): accept that one, and refuse "raw" rather than silently ignore it.
        representation = kwargs.pop("representation", "spectrogram")
        if representation != "spectrogram":
            raise ValueError(f"`representation` {representation!r} is not supported: the processor makes spectrograms")
        self.num_channels = _positive_int("num_channels", num_channels)
        self.n_fft = _positive_int("n_fft", n_fft)
        self.hop_length = _positive_int("hop_length", hop_length)
        self.power = _positive_float("power", power)
        self.log_offset = _positive_float("log_offset", log_offset)
        self.do_normalize = bool(do_normalize)
        self.standardize_windows = bool(standardize_windows)
        self.channel_means = self.channel_stds = self.window_means = self.window_stds = None
        for kind, means, stds in (("channel", channel_means, channel_stds), ("window", window_means, window_stds)):
            if (means is None) != (stds is None):
                raise ValueError(f"give both `{kind}_means` and `{kind}_stds`, or neither")
        if channel_means is not None:
            self.set_statistics(channel_means, channel_stds)
        if window_means is not None:
            self.set_window_statistics(window_means, window_stds)
        super().__init__(**kwargs)

    # ------------------------------------------------------------------------------------------------ config
    def to_dict(self) -> dict[str, Any]:
        output = copy.deepcopy({k: v for k, v in self.__dict__.items() if not k.startswith("_")})
        output["feature_extractor_type"] = self.__class__.__name__
        return output

    def _checked_statistics(
        self, kind: str, means: Sequence[float], stds: Sequence[float]
    ) -> tuple[list[float], list[float]]:
        means, stds = [float(v) for v in means], [float(v) for v in stds]
        if len(means) != self.num_channels or len(stds) != self.num_channels:
            raise ValueError(f"need {self.num_channels} {kind} means and stds, got {len(means)} and {len(stds)}")
        if not all(math.isfinite(v) for v in means) or not all(math.isfinite(v) and v > 0 for v in stds):
            raise ValueError(f"{kind} means must be finite and {kind} stds finite and positive")
        return means, stds

    def set_statistics(self, channel_means: Sequence[float], channel_stds: Sequence[float]) -> None:
        """Set the per-channel normalisation statistics (``num_channels`` finite means, positive stds)."""
        self.channel_means, self.channel_stds = self._checked_statistics("channel", channel_means, channel_stds)

    def set_window_statistics(self, window_means: Sequence[float], window_stds: Sequence[float]) -> None:
        """Set the per-channel statistics of the raw windows that `standardize` uses."""
        self.window_means, self.window_stds = self._checked_statistics("window", window_means, window_stds)

    @property
    def num_frequency_bins(self) -> int:
        return self.n_fft // 2 + 1

    def num_frames(self, num_samples: int) -> int:
        """Frames of the spectrogram of a ``num_samples`` window: ``1 + num_samples // hop_length`` (centred)."""
        return 1 + int(num_samples) // self.hop_length

    # ------------------------------------------------------------------------------------------------ batched core
    def _as_batch(self, values) -> torch.Tensor:
        if isinstance(values, np.ndarray):
            values = torch.from_numpy(values)
        if not torch.is_tensor(values):
            raise ValueError(f"`values` must be a [B, C, T] or [C, T] tensor or array, got {type(values).__name__}")
        if values.ndim == 2:
            values = values.unsqueeze(0)
        if values.ndim != 3 or values.shape[1] != self.num_channels:
            raise ValueError(
                f"`values` must be [B, {self.num_channels}, T] or [{self.num_channels}, T], got {tuple(values.shape)}"
            )
        if not values.is_floating_point():
            values = values.float()
        return values.to(torch.float64 if values.dtype == torch.float64 else torch.float32)

    def spectrogram(self, values) -> torch.Tensor:
        """Power spectrogram ``[B, C, n_fft // 2 + 1, 1 + T // hop]`` of windows ``[B, C, T]`` (torchaudio
        ``Spectrogram`` semantics, see the module docstring), batched on the input's device, before the log."""
        x = self._as_batch(values)
        batch, channels, length = x.shape
        spec = centered_stft(x.reshape(batch * channels, length), self.n_fft, self.hop_length)
        if self.power == 2.0:
            power = spec.real.square() + spec.imag.square()
        else:
            power = spec.abs().pow(self.power)
        return power.reshape(batch, channels, *power.shape[-2:])

    def features(self, values) -> torch.Tensor:
        """The log-spectrogram before normalisation: ``log(spectrogram + log_offset)``."""
        return torch.log(self.spectrogram(values) + self.log_offset)

    def _z_score(self, x: torch.Tensor, means: list[float] | None, stds: list[float] | None, kind: str) -> torch.Tensor:
        if means is None:
            raise ValueError(
                f"no {kind} statistics: call `fit_statistics(training_windows)` or pass {kind}_means/{kind}_stds"
            )
        shape = (1, self.num_channels) + (1,) * (x.ndim - 2)
        mean = torch.tensor(means, dtype=x.dtype, device=x.device).reshape(shape)
        std = torch.tensor(stds, dtype=x.dtype, device=x.device).reshape(shape)
        return (x - mean) / std

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        """Per-channel z-score of ``[B, C, ...]`` features with the stored statistics."""
        return self._z_score(features, self.channel_means, self.channel_stds, "channel")

    def standardize(self, values) -> torch.Tensor:
        """The windows ``[B, C, T]`` standardised per channel with `window_means` / `window_stds` when
        `standardize_windows` is set (else as they are, as a float batch): what `process` takes the STFT of."""
        x = self._as_batch(values)
        return self._z_score(x, self.window_means, self.window_stds, "window") if self.standardize_windows else x

    def front_end(self, windows: torch.Tensor) -> torch.Tensor:
        """The encoder's inputs from windows already `standardize`d: log-spectrogram, then the z-score when
        `do_normalize`. Differentiable, so that a viewmaker of the raw windows is trained through it."""
        features = self.features(windows)
        return self.normalize(features) if self.do_normalize else features

    def process(self, values) -> torch.Tensor:
        """The whole recipe on ``[B, C, T]`` windows on any device; float32 (float64 input stays float64)."""
        return self.front_end(self.standardize(values))

    def __call__(self, values, return_tensors: str | None = "pt", device=None) -> BatchFeature:
        """``BatchFeature(input_features=...)`` of one window ``[C, T]`` or a batch ``[B, C, T]`` (tensor or array),
        computed on ``device`` (default: the input's)."""
        if return_tensors not in (None, "pt", "np"):
            raise ValueError(f"`return_tensors` must be 'pt', 'np' or None, got {return_tensors!r}")
        x = self._as_batch(values)
        if device is not None:
            x = x.to(device)
        out = self.process(x)
        if return_tensors == "pt":
            return BatchFeature({"input_features": out}, tensor_type="pt")
        return BatchFeature({"input_features": out.detach().cpu().numpy()})

    # ------------------------------------------------------------------------------------------------ statistics
    def fit_statistics(
        self,
        windows: Iterable,
        batch_size: int = 256,
        max_windows: int | None = None,
        device: torch.device | str | None = None,
    ) -> SensorSpectrogramProcessor:
        """Set ``channel_means`` / ``channel_stds`` to the per-channel mean and (population) standard deviation of the
        log-spectrogram over ``windows`` (over every window, frequency and frame), and return ``self``. With
        `standardize_windows`, first ``window_means`` / ``window_stds``, those of the raw windows (over every window
        and time step), and the log-spectrogram statistics are then those of the standardised windows.

        ``windows``: a dataset or iterable of items ``{"values": [C, T]}`` (e.g. :class:`Pamap2Windows` of the
        training split) or of ``[C, T]`` / ``[B, C, T]`` tensors or arrays; at most ``max_windows`` are used.
        Computed in float64 in batches of ``batch_size``. A constant channel gets std 1 (with a warning).
        """
        batch_size = _positive_int("batch_size", batch_size)
        if (
            hasattr(windows, "__getitem__")
            and hasattr(windows, "__len__")
            and not torch.is_tensor(windows)
            and not isinstance(windows, np.ndarray)
        ):
            dataset = windows
            windows = None  # read item by item, once per pass
        elif self.standardize_windows and iter(windows) is windows:
            windows = list(windows)  # read twice: the raw statistics, then the spectrograms'

        def batches():
            pending: list[torch.Tensor] = []
            used = 0
            for item in windows if windows is not None else (dataset[i] for i in range(len(dataset))):
                if max_windows is not None and used >= max_windows:
                    break
                value = item["values"] if isinstance(item, Mapping) else item
                x = self._as_batch(value)
                if max_windows is not None:
                    x = x[: max_windows - used]
                pending.append(x)
                used += x.shape[0]
                if sum(p.shape[0] for p in pending) >= batch_size:
                    yield torch.cat(pending).to(device=device or pending[0].device, dtype=torch.float64)
                    pending.clear()
            if pending:
                yield torch.cat(pending).to(device=device or pending[0].device, dtype=torch.float64)

        if self.standardize_windows:
            self.set_window_statistics(*self._channel_moments(batches(), lambda x: x, "raw windows"))
        self.set_statistics(
            *self._channel_moments(batches(), lambda x: self.features(self.standardize(x)), "log-spectrograms")
        )
        return self

    def _channel_moments(self, batches: Iterable[torch.Tensor], transform, what: str) -> tuple[list, list]:
        """Per-channel mean and population std of ``transform(batch)`` ``[B, C, ...]`` over all the batches."""
        total = torch.zeros(self.num_channels, dtype=torch.float64)
        total_sq = torch.zeros(self.num_channels, dtype=torch.float64)
        count = 0
        for batch in batches:
            f = transform(batch).transpose(0, 1).reshape(self.num_channels, -1)
            total += f.sum(dim=1).cpu()
            total_sq += f.square().sum(dim=1).cpu()
            count += f.shape[1]
        if count == 0:
            raise ValueError("`windows` is empty")
        mean = total / count
        std = (total_sq / count - mean.square()).clamp(min=0).sqrt()
        constant = (std < 1e-8).nonzero().flatten().tolist()
        if constant:
            logger.warning(f"channels {constant} of the {what} are constant over the windows; their std is set to 1")
            std[constant] = 1.0
        return mean.tolist(), std.tolist()
