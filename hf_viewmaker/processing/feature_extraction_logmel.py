"""The Viewmaker paper's log-mel front end (docs/method.md §4.2, §4.3) as a transformers feature extractor.

The recipe of the original code, per clip, was:

1. fit the waveform (16 kHz) to ``max_length = 150_526`` samples: zeros appended at the end if shorter; if longer,
   the first ``max_length`` samples in evaluation, and in training the first *or* the last ``max_length`` samples
   (a coin flip per clip);
2. ``S = librosa.feature.melspectrogram(y, sr, n_fft=2048, hop_length=hop, n_mels=size)`` with the librosa <= 0.9
   defaults: periodic Hann window, ``center=True`` with *reflect* padding, power 2, slaney mel scale and slaney
   area normalisation, fmin 0, fmax sr/2. ``hop = {32: 4800, 64: 2360, 112: 1344, 224: 672}[size]``, which gives
   exactly ``1 + 150526 // hop == size`` frames;
3. ``librosa.power_to_db(S ** 2)`` (ref 1.0, amin 1e-10, top_db 80 below the clip's own maximum). The power
   spectrogram is squared *again*: this is what the original does and what its checkpoints expect;
4. z-score with the dataset statistics (``(x - mean) / std``), giving a ``1 x size x size`` image.

This module computes the same thing batched in torch (framing, one real FFT and the filterbank matmul over many clips
at once) on whatever device the waveforms are on, so training code can run it on the accelerator:

>>> fe = LogMelFeatureExtractor(size=64)                                   # doctest: +SKIP
>>> fe([wave_a, wave_b], sampling_rate=16000)["input_features"].shape      # doctest: +SKIP
torch.Size([2, 1, 64, 64])

Note that librosa >= 0.10 changed the default ``pad_mode`` of ``melspectrogram`` to ``"constant"``; the paper used
``"reflect"``, and so does this extractor.
"""

from __future__ import annotations

import copy
import math
import numbers
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.audio_utils import mel_filter_bank
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import logging

from .spectral import stft_num_frames, windowed_frames

logger = logging.get_logger(__name__)

__all__ = [
    "AMIN",
    "DATASET_NORMALIZATION_STATS",
    "HOP_LENGTH_FOR_SIZE",
    "MAX_LENGTH",
    "LogMelFeatureExtractor",
]

#: Samples each clip is fit to (≈ 9.41 s at 16 kHz), as in the original code.
MAX_LENGTH = 150_526

#: Frames the CPU front end takes through framing, FFT and filterbank at a time: 1,024 frames of 2,048 samples (8 MB
#: in float32) stay in cache between the steps, which made the paper's batch of 64 clips ~2x faster than one pass
#: over all frames on a 2-core Xeon (benchmarks/RESULTS.md).
CPU_FRAMES_PER_CHUNK = 1024

#: Consecutive mel filters per block of the filterbank matmul (see ``LogMelFeatureExtractor._mel_filter_blocks``).
MEL_FILTERS_PER_BLOCK = 16

#: Hop length per output size, as in the original code: ``1 + MAX_LENGTH // hop == size`` frames for every entry.
HOP_LENGTH_FOR_SIZE: Mapping[int, int] = MappingProxyType({32: 4800, 64: 2360, 112: 1344, 224: 672})

#: ``librosa.power_to_db``'s floor on its input (here the *squared* mel power spectrogram).
AMIN = 1e-10

#: Normalisation statistics of the log-mel images (in dB of ``power_to_db(S**2)``) used by the original code for each
#: dataset (docs/method.md §4.3), with each dataset's sampling rate as the original code read it (AudioMNIST keeps its
#: native 48 kHz, so its mel axis spans 0-24 kHz). Use :meth:`LogMelFeatureExtractor.for_dataset` to build an
#: extractor from a name. Keys: ``librispeech`` (pretraining, and the speaker-ID transfer task on dev-clean),
#: ``voxceleb1``, ``audio_mnist``, ``google_speech_commands``, ``fluent_speech_commands``.
DATASET_NORMALIZATION_STATS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "librispeech": MappingProxyType({"mean": -22.924, "std": 12.587, "sampling_rate": 16000}),
        "voxceleb1": MappingProxyType({"mean": -37.075, "std": 19.776, "sampling_rate": 16000}),
        "audio_mnist": MappingProxyType({"mean": -90.293, "std": 11.799, "sampling_rate": 48000}),
        "google_speech_commands": MappingProxyType({"mean": -46.847, "std": 19.151, "sampling_rate": 16000}),
        "fluent_speech_commands": MappingProxyType({"mean": -31.809, "std": 13.127, "sampling_rate": 16000}),
    }
)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
    return int(value)


def _finite_float(name: str, value: Any, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"`{name}` must be a finite number, got {value!r}")
    if positive and float(value) <= 0:
        raise ValueError(f"`{name}` must be positive, got {value!r}")
    return float(value)


class LogMelFeatureExtractor(SequenceFeatureExtractor):
    r"""
    Turns raw mono waveforms into the Viewmaker paper's normalised log-mel images ``[B, 1, size, size]``.

    Saved and loaded as ``preprocessor_config.json`` with ``save_pretrained`` / ``from_pretrained``.

    Args:
        feature_size (`int`, defaults to 1):
            Channels of the output image. The recipe makes one channel; any other value is refused.
        sampling_rate (`int`, defaults to 16000):
            Sampling rate the inputs must have (there is no resampling). It also sets the mel axis: 0 to
            ``sampling_rate / 2``.
        size (`int`, defaults to 64):
            Number of mel bins, and (with the paper's hop lengths) number of frames: 64 for the 100 h LibriSpeech
            recipes, 112 for the 960 h ones.
        n_fft (`int`, defaults to 2048):
            FFT size and Hann window length.
        hop_length (`int`, *optional*):
            STFT hop. Defaults to the paper's hop for ``size`` (``HOP_LENGTH_FOR_SIZE``: 32→4800, 64→2360,
            112→1344, 224→672); another ``size`` needs an explicit hop. The number of frames is
            ``1 + max_length // hop_length`` (:attr:`num_frames`), so a custom hop may give a non-square image.
        max_length (`int`, defaults to 150526):
            Samples each clip is padded or cropped to. Must exceed ``n_fft // 2`` (reflect padding).
        top_db (`float` or `None`, defaults to 80.0):
            Dynamic range kept below each clip's maximum (in dB of the squared power); `None` keeps everything.
        normalize_mean (`float`, defaults to -22.924), normalize_std (`float`, defaults to 12.587):
            Dataset statistics of the dB image (LibriSpeech by default; see ``DATASET_NORMALIZATION_STATS``).
        padding_value (`float`, defaults to 0.0):
            Value appended to clips shorter than ``max_length`` (silence).
    """

    model_input_names = ["input_features"]

    def __init__(
        self,
        feature_size: int = 1,
        sampling_rate: int = 16000,
        size: int = 64,
        n_fft: int = 2048,
        hop_length: int | None = None,
        max_length: int = MAX_LENGTH,
        top_db: float | None = 80.0,
        normalize_mean: float = -22.924,
        normalize_std: float = 12.587,
        padding_value: float = 0.0,
        return_attention_mask: bool = False,
        **kwargs,
    ):
        if _positive_int("feature_size", feature_size) != 1:
            raise ValueError(f"`feature_size` is the number of output channels and must be 1, got {feature_size!r}")
        sampling_rate = _positive_int("sampling_rate", sampling_rate)
        size = _positive_int("size", size)
        n_fft = _positive_int("n_fft", n_fft)
        if hop_length is None:
            if size not in HOP_LENGTH_FOR_SIZE:
                raise ValueError(
                    f"`size`={size} has no default hop: the paper's sizes are {sorted(HOP_LENGTH_FOR_SIZE)}; "
                    "pass `hop_length` explicitly for another size"
                )
            hop_length = HOP_LENGTH_FOR_SIZE[size]
        hop_length = _positive_int("hop_length", hop_length)
        max_length = _positive_int("max_length", max_length)
        if max_length <= n_fft // 2:
            raise ValueError(
                f"`max_length` ({max_length}) must exceed n_fft // 2 ({n_fft // 2}) for the centred reflect padding"
            )
        if top_db is not None:
            top_db = _finite_float("top_db", top_db, positive=True)
        normalize_mean = _finite_float("normalize_mean", normalize_mean)
        normalize_std = _finite_float("normalize_std", normalize_std, positive=True)
        padding_value = _finite_float("padding_value", padding_value)

        if kwargs.get("padding_side", "right") != "right":
            raise ValueError(
                f"`padding_side` must be 'right' (padding is appended at the end), got {kwargs['padding_side']!r}"
            )
        super().__init__(
            feature_size=1,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        self.size = size
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.max_length = max_length
        self.top_db = top_db
        self.normalize_mean = normalize_mean
        self.normalize_std = normalize_std
        # Filterbanks per (config, device, dtype) and CPU scratch buffers per thread; never serialised (see `to_dict`).
        self._mel_filter_cache: dict[tuple, torch.Tensor] = {}
        self._mel_block_cache: dict[tuple, list] = {}
        self._cpu_workspaces: dict[int, tuple] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Scratch memory of this process (~16 MB): not worth shipping to DataLoader workers.
        return {k: v for k, v in self.__dict__.items() if k != "_cpu_workspaces"}

    # ------------------------------------------------------------------------------------------------ construction
    @classmethod
    def for_dataset(cls, name: str, **kwargs) -> LogMelFeatureExtractor:
        """An extractor with ``name``'s normalisation statistics and sampling rate (``DATASET_NORMALIZATION_STATS``);
        ``kwargs`` (e.g. ``size=112``) set the other fields and may override those too."""
        if name not in DATASET_NORMALIZATION_STATS:
            raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASET_NORMALIZATION_STATS)}")
        stats = DATASET_NORMALIZATION_STATS[name]
        fields = {"normalize_mean": stats["mean"], "normalize_std": stats["std"]}
        fields["sampling_rate"] = int(stats["sampling_rate"])
        return cls(**(fields | kwargs))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able config; private attributes (the filterbank cache) are left out."""
        output = copy.deepcopy({k: v for k, v in self.__dict__.items() if not k.startswith("_")})
        output["feature_extractor_type"] = self.__class__.__name__
        return output

    @classmethod
    def from_dict(cls, feature_extractor_dict: dict[str, Any], **kwargs):
        """As the mixin's, except that overriding ``size`` (e.g. ``from_pretrained(path, size=112)``) re-derives a
        saved ``hop_length`` that was the paper's hop for the saved size, instead of keeping the old hop."""
        saved_size, saved_hop = feature_extractor_dict.get("size"), feature_extractor_dict.get("hop_length")
        if "size" in kwargs and "hop_length" not in kwargs and saved_hop == HOP_LENGTH_FOR_SIZE.get(saved_size):
            feature_extractor_dict = {**feature_extractor_dict, "hop_length": None}
        return super().from_dict(feature_extractor_dict, **kwargs)

    # ------------------------------------------------------------------------------------------------ properties
    @property
    def num_frames(self) -> int:
        """Frames of the output: ``1 + max_length // hop_length`` (== ``size`` for the paper's hops)."""
        return 1 + self.max_length // self.hop_length

    def mel_filters(self, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The ``[size, 1 + n_fft // 2]`` slaney-scale, slaney-normalised filterbank from 0 to sr/2 (librosa's
        ``filters.mel`` defaults), built in float64 and cached per device and dtype."""
        device = torch.device(device if device is not None else "cpu")
        key = (self.sampling_rate, self.n_fft, self.size, device, dtype)
        cache = self.__dict__.setdefault("_mel_filter_cache", {})
        if key not in cache:
            bank = mel_filter_bank(
                num_frequency_bins=1 + self.n_fft // 2,
                num_mel_filters=self.size,
                min_frequency=0.0,
                max_frequency=self.sampling_rate / 2,
                sampling_rate=self.sampling_rate,
                norm="slaney",
                mel_scale="slaney",
            )  # [n_freq, n_mels], float64
            cache[key] = torch.from_numpy(np.ascontiguousarray(bank.T)).to(device=device, dtype=dtype)
        return cache[key]

    def _mel_filter_blocks(self, device: torch.device, dtype: torch.dtype) -> list[tuple[slice, slice, torch.Tensor]]:
        """The filterbank as blocks of ``MEL_FILTERS_PER_BLOCK`` consecutive filters, each with only the frequency
        bins it touches (every bin lies in at most two slaney filters, so this is ~4x fewer multiply-adds than the
        dense matmul): ``(filters, columns, weights [len(columns), len(filters)])`` where ``columns`` index a
        spectrum with real and imaginary parts interleaved, and each bin's weight is repeated for both parts."""
        key = (self.sampling_rate, self.n_fft, self.size, device, dtype)
        cache = self.__dict__.setdefault("_mel_block_cache", {})
        if key not in cache:
            bank = self.mel_filters(device, dtype)  # [size, n_freq]
            blocks = []
            for first in range(0, self.size, MEL_FILTERS_PER_BLOCK):
                filters = slice(first, min(self.size, first + MEL_FILTERS_PER_BLOCK))
                touched = bank[filters].ne(0).any(0).nonzero().flatten().tolist()
                lo, hi = (touched[0], touched[-1] + 1) if touched else (0, 0)
                weights = bank[filters, lo:hi].T.repeat_interleave(2, dim=0).contiguous()
                blocks.append((filters, slice(2 * lo, 2 * hi), weights))
            cache[key] = blocks
        return cache[key]

    def _chunk_buffers(
        self, device: torch.device, dtype: torch.dtype, clips: int, frames: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Buffers for the windowed frames ``[clips, frames, n_fft]`` and spectra ``[clips, frames, n_fft // 2 + 1]``
        of one chunk. On the CPU they are kept between calls (one pair per thread): allocated afresh, these ~16 MB
        cost ~4,000 page faults per call, a third of the front end's time, because glibc hands blocks that large back
        to the system when they are freed. Other devices have caching allocators."""
        shape = (clips, frames, self.n_fft)
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        if device.type != "cpu":
            return torch.empty(shape, device=device, dtype=dtype), torch.empty(
                (*shape[:-1], self.n_fft // 2 + 1), device=device, dtype=complex_dtype
            )
        key = (dtype, shape)
        workspaces = self.__dict__.setdefault("_cpu_workspaces", {})
        cached = workspaces.get(threading.get_ident())
        if cached is None or cached[0] != key:
            cached = workspaces[threading.get_ident()] = (
                key,
                torch.empty(shape, dtype=dtype),
                torch.empty((*shape[:-1], self.n_fft // 2 + 1), dtype=complex_dtype),
            )
        return cached[1], cached[2]

    # ------------------------------------------------------------------------------------------------ batched core
    def mel_power(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Mel power spectrogram ``[B, 1, size, num_frames]`` of fitted waveforms ``[B, T]``, before any log.

        The STFT of :func:`~hf_viewmaker.processing.spectral.centered_stft` (periodic Hann, centred, reflect
        padding), ``|X|**2``, the filterbank, on the waveforms' device. On the CPU the clips go through in chunks of
        about ``CPU_FRAMES_PER_CHUNK`` frames so that each chunk stays in cache from framing to mel; elsewhere the
        batch is one chunk. float64 inputs stay float64; other dtypes are computed in float32. A data-side
        transform: not differentiable. Spectral masking (the paper's SpecAugment-like expert views) belongs here,
        before :meth:`to_log_normalized`.
        """
        if not torch.is_tensor(waveforms) or waveforms.ndim != 2:
            raise ValueError(
                f"`waveforms` must be a [batch, time] tensor, got "
                f"{tuple(waveforms.shape) if torch.is_tensor(waveforms) else type(waveforms).__name__}"
            )
        if waveforms.shape[-1] <= self.n_fft // 2:
            raise ValueError(
                f"`waveforms` have {waveforms.shape[-1]} samples; reflect padding needs more than n_fft // 2 "
                f"({self.n_fft // 2}): fit them with `fit_length` first"
            )
        dtype = torch.float64 if waveforms.dtype == torch.float64 else torch.float32
        waveforms = waveforms.to(dtype)
        batch, frames = waveforms.shape[0], stft_num_frames(waveforms.shape[-1], self.n_fft, self.hop_length)
        chunk = batch if waveforms.device.type != "cpu" else max(1, CPU_FRAMES_PER_CHUNK // frames)
        blocks = self._mel_filter_blocks(waveforms.device, dtype)
        frame_buffer, spectrum_buffer = self._chunk_buffers(waveforms.device, dtype, chunk, frames)
        mel = waveforms.new_empty(batch, self.size, frames)
        window = torch.hann_window(self.n_fft, periodic=True, dtype=dtype, device=waveforms.device)
        for start in range(0, batch, chunk):
            clips = waveforms[start : start + chunk]
            count = clips.shape[0]
            windowed = windowed_frames(clips, self.n_fft, self.hop_length, frame_buffer[:count], window)
            spectrum = torch.fft.rfft(windowed, out=spectrum_buffer[:count])
            # re and im interleaved and squared in place; the filterbank matmul then also sums re**2 + im**2
            power_parts = torch.view_as_real(spectrum).flatten(-2).square_()
            for filters, columns, weights in blocks:
                mel[start : start + chunk, filters] = (power_parts[..., columns] @ weights).transpose(-1, -2)
        return mel.unsqueeze(1)

    def power_to_db(self, mel_power: torch.Tensor) -> torch.Tensor:
        """``librosa.power_to_db(mel_power ** 2, ref=1.0, amin=1e-10, top_db=self.top_db)``, batched: the top_db
        floor is taken below each item's own maximum over its last two (frequency, time) dimensions.

        Computed as ``20 * log10(max(S, sqrt(amin)))``, which equals ``10 * log10(max(S**2, amin))`` for ``S >= 0``
        without squaring, so float32 neither overflows nor loses the small values.
        """
        db = torch.clamp(mel_power, min=math.sqrt(AMIN)).log10_().mul_(20.0)
        if self.top_db is not None:
            db = torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True).sub_(self.top_db), out=db)
        return db

    def to_log_normalized(self, mel_power: torch.Tensor) -> torch.Tensor:
        """Normalised log-mel image from a (possibly masked) mel power spectrogram: ``(power_to_db(S) - mean) / std``.
        Same shape as ``mel_power``."""
        return self.power_to_db(mel_power).sub_(self.normalize_mean).div_(self.normalize_std)

    def log_mel(self, waveforms: torch.Tensor) -> torch.Tensor:
        """The whole recipe on fitted, same-length waveforms ``[B, T]`` on any device: ``[B, 1, size, num_frames]``.
        Does not check for NaN/inf (``fit_length`` and ``__call__`` do) so it never synchronises the device."""
        return self.to_log_normalized(self.mel_power(waveforms))

    def fit_statistics(
        self, clips: Iterable, batch_size: int = 64, max_clips: int | None = None
    ) -> LogMelFeatureExtractor:
        """Set ``normalize_mean`` / ``normalize_std`` to the mean and (population) standard deviation of the dB image
        (:meth:`power_to_db` of the fitted clips) over ``clips``, and return ``self``: for a dataset that
        ``DATASET_NORMALIZATION_STATS`` does not list.

        ``clips``: an iterable of 1-D waveforms, or of items ``{"waveform": [T]}`` (e.g. :class:`SpeechExamples` of
        the training split); at most ``max_clips`` are used, each fitted with :meth:`fit_length` (its first
        ``max_length`` samples, zero-padded). Sums are accumulated in float64.
        """
        batch_size = _positive_int("batch_size", batch_size)
        total = total_sq = 0.0
        count = 0
        pending: list = []

        def flush():
            nonlocal total, total_sq, count
            db = self.power_to_db(self.mel_power(self.fit_length(pending, device="cpu"))).double()
            total += float(db.sum())
            total_sq += float(db.square().sum())
            count += db.numel()
            pending.clear()

        source = (clips[i] for i in range(len(clips))) if isinstance(clips, torch.utils.data.Dataset) else clips
        for used, item in enumerate(source):
            if max_clips is not None and used >= max_clips:
                break
            pending.append(item["waveform"] if isinstance(item, Mapping) else item)
            if len(pending) == batch_size:
                flush()
        if pending:
            flush()
        if count == 0:
            raise ValueError("`clips` is empty: cannot fit the log-mel statistics")
        mean = total / count
        self.normalize_mean = mean
        self.normalize_std = _finite_float("normalize_std", math.sqrt(max(total_sq / count - mean * mean, 0.0)), True)
        return self

    # ------------------------------------------------------------------------------------------------ input fitting
    def _as_clips(self, raw_speech) -> torch.Tensor | list[torch.Tensor]:
        """A [B, T] tensor, or a list of 1-D tensors (on their own devices; numpy on the CPU)."""
        if isinstance(raw_speech, np.ndarray):
            raw_speech = torch.from_numpy(np.asarray(raw_speech))
        if torch.is_tensor(raw_speech):
            if raw_speech.ndim == 1:
                return [raw_speech]
            if raw_speech.ndim == 2:
                return raw_speech
            raise ValueError(
                f"`raw_speech` must be one mono clip [T] or a batch [B, T], got shape {tuple(raw_speech.shape)}"
            )
        if isinstance(raw_speech, Sequence) and not isinstance(raw_speech, (str, bytes)):
            if len(raw_speech) == 0:
                raise ValueError("`raw_speech` is empty")
            if all(isinstance(v, numbers.Real) for v in raw_speech):  # one clip as a list of numbers
                return [torch.tensor(np.asarray(raw_speech, dtype=np.float32))]
            clips = []
            for i, clip in enumerate(raw_speech):
                if torch.is_tensor(clip):
                    tensor = clip
                else:
                    array = np.asarray(clip)
                    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
                        raise ValueError(f"`raw_speech[{i}]` is not a numeric array")
                    tensor = torch.from_numpy(array)
                if tensor.ndim != 1:
                    raise ValueError(f"`raw_speech[{i}]` must be a 1-D mono clip, got shape {tuple(tensor.shape)}")
                clips.append(tensor)
            return clips
        raise ValueError(f"`raw_speech` must be an array, a tensor or a list of clips, got {type(raw_speech).__name__}")

    def fit_length(
        self,
        raw_speech,
        training: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Fit each clip to ``max_length`` samples and stack them: ``[B, max_length]`` float32.

        Shorter clips get ``padding_value`` appended at the end. Longer clips keep their first ``max_length``
        samples; with ``training=True`` a coin flip per clip (``torch.randint(2, (B,), generator=generator)``, drawn
        for every clip whatever its length, 1 = last part) keeps the last ``max_length`` samples instead.
        ``raw_speech``: one 1-D array/tensor/list of numbers, a list of them (any lengths), or a 2-D ``[B, T]``
        array/tensor. The result lies on ``device``, by default the device of the input tensor(s) (else the CPU).
        Raises ValueError naming the first clip that holds NaN or infinity.
        """
        clips = self._as_clips(raw_speech)
        if device is None:
            first = clips if torch.is_tensor(clips) else clips[0]
            device = first.device
        device = torch.device(device)
        batch = clips.shape[0] if torch.is_tensor(clips) else len(clips)
        length = self.max_length
        take_last = None
        if training:
            gen_device = generator.device if generator is not None else "cpu"
            take_last = torch.randint(0, 2, (batch,), generator=generator, device=gen_device).bool()

        if torch.is_tensor(clips):  # [B, T]: vectorised
            x = clips.to(device=device, dtype=torch.float32)
            bad = ~torch.isfinite(x).all(dim=1)
            if bool(bad.any()):
                raise ValueError(f"`raw_speech[{int(bad.nonzero()[0, 0])}]` contains NaN or infinite values")
            total = x.shape[1]
            if total > length:
                first = x[:, :length]
                if take_last is not None:
                    x = torch.where(take_last.to(device)[:, None], x[:, total - length :], first)
                else:
                    x = first
            elif total < length:
                x = F.pad(x, (0, length - total), value=self.padding_value)
            return x.contiguous()

        flips = take_last.tolist() if take_last is not None else [False] * batch
        fitted = []
        for i, clip in enumerate(clips):
            clip = clip.to(torch.float32)
            if not bool(torch.isfinite(clip).all()):
                raise ValueError(f"`raw_speech[{i}]` contains NaN or infinite values")
            total = clip.shape[0]
            if total > length:
                start = total - length if flips[i] else 0
                clip = clip[start : start + length]
            elif total < length:
                clip = F.pad(clip, (0, length - total), value=self.padding_value)
            fitted.append(clip)
        if len({c.device for c in fitted}) == 1:
            return torch.stack(fitted).to(device)
        return torch.stack([c.to(device) for c in fitted])

    # ------------------------------------------------------------------------------------------------ main entry
    def __call__(
        self,
        raw_speech,
        sampling_rate: int | None = None,
        training: bool = False,
        generator: torch.Generator | None = None,
        return_tensors: str | None = "pt",
        device: torch.device | str | None = None,
    ) -> BatchFeature:
        """Featurize one clip or a batch: ``BatchFeature(input_features=[B, 1, size, size] float32)``.

        Args:
            raw_speech: one 1-D clip (array, tensor, list of numbers), a list of clips of any lengths, or a 2-D
                ``[B, T]`` array/tensor, sampled at ``self.sampling_rate``.
            sampling_rate: the inputs' rate; one different from ``self.sampling_rate`` raises ValueError (nothing is
                resampled). Recommended, to catch mismatches.
            training: pick the first or last part of long clips at random (the pretraining recipe) instead of the
                first part (evaluation).
            generator: a `torch.Generator` for those coin flips, for reproducibility.
            return_tensors: ``"pt"`` (default; the tensor stays on the computation device), ``"np"`` or `None`
                (numpy either way).
            device: where to compute; by default the device of the input tensor(s), else the CPU.
        """
        if sampling_rate is not None:
            if sampling_rate != self.sampling_rate:
                raise ValueError(
                    f"`sampling_rate`={sampling_rate} differs from this extractor's {self.sampling_rate}: "
                    "resample the audio first (nothing is resampled here)"
                )
        else:
            logger.warning_once(
                f"Pass `sampling_rate` to `{self.__class__.__name__}()` so that a mismatched rate is caught."
            )
        if return_tensors not in (None, "pt", "np"):
            raise ValueError(f"`return_tensors` must be 'pt', 'np' or None, got {return_tensors!r}")
        waveforms = self.fit_length(raw_speech, training=training, generator=generator, device=device)
        features = self.log_mel(waveforms).to(torch.float32)
        if return_tensors == "pt":
            return BatchFeature({"input_features": features}, tensor_type="pt")
        return BatchFeature({"input_features": features.detach().cpu().numpy()})
