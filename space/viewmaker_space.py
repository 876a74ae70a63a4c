"""What the Space does, without the page: load a viewmaker per domain, read an upload safely, make views, draw them.

`app.py` puts a Gradio page around these functions; the tests call them directly too. Nothing here imports gradio.

- `load_models(sources)`: one `SpaceModel` per domain (image, audio, sensor): the viewmakers found in the given run
  folders or Hub repositories (each one's domain is read from the processor saved beside it), and for every other
  domain a small untrained viewmaker built from a fixed seed, so that the Space works offline.
- `read_upload(model, path)`: the upload decoded and checked (type by extension *and* by decoding, size, length),
  turned into the viewmaker's input by the processor it was trained with, as a `PreparedInput`; an upload that cannot
  be used raises `UploadError` with a message for the page.
- `render_views(model, prepared, budget, norm, seed, count)`: `count` views of the input, drawn with
  `hf_viewmaker.visualization.make_view_grid` (input, view, amplified perturbation per column), and a caption that
  states the budget and what was measured.
- `discard_upload(path, upload_root)`: delete an uploaded file (and its folder, if empty), only inside `upload_root`.
"""

from __future__ import annotations

import copy
import io
import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
from PIL import Image, ImageDraw, UnidentifiedImageError
from transformers.utils import cached_file

from hf_viewmaker import (
    LogMelFeatureExtractor,
    SensorSpectrogramProcessor,
    ViewmakerAugmentation,
    ViewmakerConfig,
    ViewmakerImageProcessor,
    ViewmakerModel,
)
from hf_viewmaker.data.time_series import fill_missing_values, read_ts_file
from hf_viewmaker.visualization import MAX_CHANNEL_TILES, make_view_grid

DOMAINS = ("image", "audio", "sensor")
NORM_NAMES = {"l1": "L1", "l2": "L2", "linf": "Linf"}
BUDGET_NORMS = tuple(NORM_NAMES)
assert set(BUDGET_NORMS) == set(ViewmakerConfig.budget_norms)
NORM_MEANING = {
    "l1": "mean |δ| = ε in every view",
    "l2": "root mean square of δ = ε in every view",
    "linf": "every |δ| < ε",
}

# ------------------------------------------------------------------------------------------------------ limits
#: Uploads larger than this are refused by the server before they reach the app (`launch(max_file_size=...)`), and
#: again here for files that arrive another way.
MAX_UPLOAD_MB = 20
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
MAX_IMAGE_MEGAPIXELS = 25
MIN_IMAGE_SIDE = 8
MIN_AUDIO_SECONDS = 0.1
MAX_AUDIO_SECONDS = 60.0
MAX_SENSOR_CHANNELS = 64
MAX_SENSOR_SAMPLES = 100_000
#: Spectrogram frames the viewmaker is run on at most (a longer sensor recording is cut).
MAX_SENSOR_FRAMES = 256
MAX_VIEWS = 8
MAX_BUDGET = 10.0
MAX_SEED = 2**63 - 1

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
SENSOR_EXTENSIONS = (".ts", ".csv")
EXTENSIONS = {"image": IMAGE_EXTENSIONS, "audio": AUDIO_EXTENSIONS, "sensor": SENSOR_EXTENSIONS}

# ------------------------------------------------------------------------------------------------------ defaults
#: Seed of the untrained default viewmakers' weights: the same weights at every start, on every machine.
DEFAULT_MODEL_SEED = 0
DEFAULT_BUDGET = 0.05
DEFAULT_IMAGE_SIZE = 96
#: The default speech front end: 3 s at 16 kHz as 64 mel bins x 65 frames (the paper's is 9.4 s, 64 x 64).
DEFAULT_LOGMEL = {"sampling_rate": 16000, "size": 64, "n_fft": 1024, "hop_length": 750, "max_length": 48000}
#: The default sensor front end: the paper's STFT size (32 frequency bins), with a hop that gives ~32 frames.
DEFAULT_SENSOR_N_FFT = 63
DEFAULT_SENSOR_FRAMES = 32


class UploadError(ValueError):
    """An upload (or a request) the Space cannot use; the message is written for the page."""


# ====================================================================================================== models
@dataclass
class SpaceModel:
    """The viewmaker of one domain, with the processor that makes its inputs.

    Attributes:
        domain: "image", "audio" or "sensor".
        source: where it came from, in words.
        trained: False for the untrained defaults.
        processor: `ViewmakerImageProcessor`, `LogMelFeatureExtractor`, `SensorSpectrogramProcessor`, or `None` (the
            sensor default, whose STFT hop and statistics follow each recording; or a raw-signal viewmaker).
        viewmaker: the model, or `None` when one is built per channel count (the sensor default).
    """

    domain: str
    source: str
    trained: bool
    processor: Any = None
    viewmaker: ViewmakerModel | None = None
    _build: Callable[[int], ViewmakerModel] | None = None
    _cache: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def config(self) -> ViewmakerConfig | None:
        return None if self.viewmaker is None else self.viewmaker.config

    @property
    def distortion_budget(self) -> float:
        return DEFAULT_BUDGET if self.config is None else float(self.config.distortion_budget)

    @property
    def budget_norm(self) -> str:
        return "l1" if self.config is None else self.config.budget_norm

    @property
    def num_channels(self) -> int | None:
        return None if self.config is None else self.config.num_channels

    @property
    def clamp(self) -> bool:
        """Whether the views are clamped to [0, 1] (images)."""
        return self.config is not None and bool(self.config.clamp)

    def viewmaker_for(self, num_channels: int, norm: str) -> ViewmakerModel:
        """The viewmaker for inputs of `num_channels`, bounding its perturbations with `norm`.

        The budget norm is a config field the forward pass reads: another norm gets a shallow copy of the model with
        its own config and the *same* parameters (nothing is copied but the config), cached, so concurrent requests
        with different norms never change the shared model."""
        if norm not in BUDGET_NORMS:
            raise UploadError(f"the budget norm must be one of {', '.join(NORM_NAMES.values())}, got {norm!r}")
        with self._lock:
            key = (num_channels, norm)
            if key not in self._cache:
                if self.viewmaker is not None:
                    if num_channels != self.viewmaker.config.num_channels:
                        raise UploadError(
                            f"this viewmaker was trained on {self.viewmaker.config.num_channels} channels, "
                            f"the upload has {num_channels}"
                        )
                    base = self.viewmaker
                else:
                    base = self._cache.get((num_channels, None))
                    if base is None:
                        base = self._cache[(num_channels, None)] = self._build(num_channels)
                self._cache[key] = with_budget_norm(base, norm)
            return self._cache[key]

    def describe(self) -> str:
        """One paragraph for the page: what the model is and what it expects."""
        if self.trained:
            text = f"**Model:** the viewmaker of `{self.source}` (trained"
            if self.config is not None:
                text += f" at budget {self.config.distortion_budget:g} under {NORM_NAMES[self.config.budget_norm]}"
            text += ")."
        else:
            text = (
                f"**Model: an untrained viewmaker** (random weights from seed {DEFAULT_MODEL_SEED}, built by the "
                "Space so that it works offline): its perturbations are unstructured. Start the Space with "
                "`VIEWMAKER_MODEL=<run folder or Hub repo id>` to see a trained one."
            )
        return f"{text} {self.describe_input()}"

    def describe_input(self) -> str:
        p = self.processor
        if self.domain == "image":
            return (
                f"It sees images as {p.size['height']}×{p.size['width']} "
                f"{'RGB' if p.num_channels == 3 else 'greyscale'} pixels in [0, 1] (centre-cropped to a square, "
                "then resized)."
            )
        if self.domain == "audio":
            seconds = p.max_length / p.sampling_rate
            return (
                f"It sees the first {seconds:.2f} s of a clip (mono, resampled to {p.sampling_rate} Hz, shorter clips "
                f"padded with silence) as a normalised log-mel spectrogram of {p.size} mel bins × {p.num_frames} frames."
            )
        if isinstance(p, SensorSpectrogramProcessor):
            return (
                f"It sees {p.num_channels}-channel recordings as per-channel log-spectrograms (STFT of {p.n_fft} "
                f"samples, hop {p.hop_length}), normalised with its training statistics."
            )
        if self.viewmaker is not None:
            return f"It sees raw {self.viewmaker.config.num_channels}-channel windows, each channel standardised."
        return (
            f"It sees each channel (up to {MAX_SENSOR_CHANNELS}) as a log-spectrogram (STFT of "
            f"{DEFAULT_SENSOR_N_FFT} samples, about {DEFAULT_SENSOR_FRAMES} frames), standardised per channel with "
            "the recording's own statistics."
        )


def with_budget_norm(model: ViewmakerModel, norm: str) -> ViewmakerModel:
    """`model` bounding its perturbation with `norm`: the model itself if it already does, else a shallow copy that
    shares every parameter and buffer and has its own copy of the config."""
    if model.config.budget_norm == norm:
        return model
    clone = copy.copy(model)
    clone.config = copy.deepcopy(model.config)
    clone.config.budget_norm = norm
    return clone


def build_default_viewmaker(num_channels: int, clamp: bool, seed: int = DEFAULT_MODEL_SEED) -> ViewmakerModel:
    """An untrained viewmaker (the paper's network, 3 residual blocks) whose weights depend only on `seed`; the
    global RNG is left as it was."""
    config = ViewmakerConfig(num_channels=num_channels, distortion_budget=DEFAULT_BUDGET, clamp=clamp)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ViewmakerModel(config)
    return model.eval().requires_grad_(False)


def default_model(domain: str) -> SpaceModel:
    """The untrained default of `domain`."""
    source = f"untrained default (seed {DEFAULT_MODEL_SEED})"
    if domain == "image":
        processor = ViewmakerImageProcessor(
            num_channels=3, size={"height": DEFAULT_IMAGE_SIZE, "width": DEFAULT_IMAGE_SIZE}
        )
        return SpaceModel("image", source, False, processor, build_default_viewmaker(3, clamp=True))
    if domain == "audio":
        processor = LogMelFeatureExtractor(**DEFAULT_LOGMEL)
        return SpaceModel("audio", source, False, processor, build_default_viewmaker(1, clamp=False))
    if domain == "sensor":
        return SpaceModel("sensor", source, False, _build=lambda channels: build_default_viewmaker(channels, False))
    raise ValueError(f"unknown domain {domain!r}; known: {DOMAINS}")


def load_model(path_or_repo_id: str, revision: str | None = None) -> SpaceModel:
    """The viewmaker of a run folder, a viewmaker folder or a Hub repository (`viewmaker/` in it), with the processor
    saved beside it, which says its domain. Raises `OSError` / `ValueError` naming what is wrong."""
    augmentation = ViewmakerAugmentation.from_pretrained(path_or_repo_id, revision=revision)
    viewmaker = augmentation.viewmaker
    location = str(Path(path_or_repo_id).expanduser()) if Path(path_or_repo_id).expanduser().is_dir() else None
    saved = _saved_processor(location or path_or_repo_id, revision)
    kind = (saved or {}).get("image_processor_type") or (saved or {}).get("feature_extractor_type")
    config = viewmaker.config
    where = f"the viewmaker of {path_or_repo_id}"
    if kind == ViewmakerImageProcessor.__name__:
        return SpaceModel("image", path_or_repo_id, True, ViewmakerImageProcessor.from_dict(saved), viewmaker)
    if kind == LogMelFeatureExtractor.__name__:
        if config.num_channels != 1 or config.spatial_dims != 2:
            raise ValueError(f"{where} has a log-mel processor but takes {config.num_channels}-channel inputs")
        return SpaceModel("audio", path_or_repo_id, True, LogMelFeatureExtractor.from_dict(saved), viewmaker)
    if kind == SensorSpectrogramProcessor.__name__:
        processor = SensorSpectrogramProcessor.from_dict(saved)
        if processor.num_channels != config.num_channels:
            raise ValueError(
                f"{where} takes {config.num_channels} channels but its processor makes {processor.num_channels}"
            )
        if processor.do_normalize and processor.channel_means is None:
            raise ValueError(f"the sensor processor of {path_or_repo_id} has no channel statistics")
        return SpaceModel("sensor", path_or_repo_id, True, processor, viewmaker)
    if kind is not None:
        raise ValueError(f"{where} comes with a {kind}, which this Space does not know")
    if config.spatial_dims == 1:
        return SpaceModel("sensor", path_or_repo_id, True, None, viewmaker)
    if config.clamp and config.num_channels in (1, 3):
        processor = ViewmakerImageProcessor(num_channels=config.num_channels)
        return SpaceModel("image", path_or_repo_id, True, processor, viewmaker)
    raise ValueError(
        f"{where} has no preprocessor_config.json beside it, so its domain (image, audio or sensor) is unknown"
    )


def _saved_processor(path_or_repo_id: str, revision: str | None) -> dict | None:
    """`preprocessor_config.json` beside the viewmaker (in the folder itself, else in its `viewmaker/`)."""
    for subfolder in ("", "viewmaker"):
        config = cached_file(
            path_or_repo_id,
            "config.json",
            subfolder=subfolder,
            revision=revision,
            _raise_exceptions_for_missing_entries=False,
        )
        if config is None or json.loads(Path(config).read_text()).get("model_type") != ViewmakerConfig.model_type:
            continue
        saved = cached_file(
            path_or_repo_id,
            "preprocessor_config.json",
            subfolder=subfolder,
            revision=revision,
            _raise_exceptions_for_missing_entries=False,
        )
        return None if saved is None else json.loads(Path(saved).read_text())
    return None


def load_models(sources: Iterable[str] = ()) -> dict[str, SpaceModel]:
    """One model per domain: those of `sources` (run folders or Hub ids, each `ID` or `ID@REVISION`), the untrained
    default for every other domain. Two sources of one domain are an error."""
    models: dict[str, SpaceModel] = {}
    for source in sources:
        source = source.strip()
        if not source:
            continue
        path_or_repo_id, revision = source, None
        if "@" in source and not Path(source).expanduser().exists():
            path_or_repo_id, _, revision = source.partition("@")
        model = load_model(path_or_repo_id, revision or None)
        if model.domain in models:
            raise ValueError(
                f"two {model.domain} viewmakers given ({models[model.domain].source} and {source}): one per domain"
            )
        models[model.domain] = model
    return {domain: models.get(domain) or default_model(domain) for domain in DOMAINS}


# ====================================================================================================== uploads
@dataclass
class PreparedInput:
    """An upload as the viewmaker's input.

    Attributes:
        features: `[1, C, H, W]` (images, log-mels, sensor spectrograms) or `[1, C, T]` (raw signals), float32.
        description: what was read and what was done to it, for the page.
        origin: how `make_view_grid` draws it ("lower" puts low frequencies at the bottom).
    """

    features: torch.Tensor
    description: str
    origin: str = "upper"


def _name(path: str | os.PathLike) -> str:
    """The file's name as the page shows it (no server path), with the characters Markdown would interpret escaped."""
    return "".join("\\" + c if c in "\\`*_[]<>|#" else c for c in Path(path).name) or "the file"


def check_file(domain: str, path: str | os.PathLike, name: str) -> None:
    """Refuse a missing or empty file, a type the domain does not read (by extension), and a file over the size
    limit, before reading a byte of it."""
    extensions = EXTENSIONS[domain]
    if Path(path).suffix.lower() not in extensions:
        suffix = Path(path).suffix or "no extension"
        raise UploadError(
            f"{name} is not an {domain} file this Space reads ({suffix}): upload one of {', '.join(extensions)}"
            if domain != "sensor"
            else f"{name} is not a sensor recording this Space reads ({suffix}): upload a .ts (sktime) or .csv file"
        )
    try:
        size = os.path.getsize(path)
    except OSError as error:
        raise UploadError(f"{name} could not be opened (it may have been removed already): upload it again") from error
    if size == 0:
        raise UploadError(f"{name} is empty")
    if size > MAX_UPLOAD_BYTES:
        raise UploadError(f"{name} is {size / 2**20:.1f} MB; the limit is {MAX_UPLOAD_MB} MB")


def read_upload(
    model: SpaceModel, path: str | os.PathLike, upload_root: str | os.PathLike | None = None, name: str | None = None
) -> PreparedInput:
    """The upload at `path` as `model`'s input; `UploadError` if it cannot be used.

    Args:
        upload_root: when given, a file outside this folder (gradio's upload folder) is refused unread.
        name: the name the page gives the file (default: its own), e.g. the uploader's file name.
    """
    name = _name(name or path)
    if upload_root is not None and Path(upload_root).resolve() not in Path(path).resolve().parents:
        raise UploadError(f"{name} is not an upload of this page")
    check_file(model.domain, path, name)
    if model.domain == "image":
        return prepare_image(model, read_image(path, name), name)
    if model.domain == "audio":
        waveform, sampling_rate = read_audio(path, name)
        return prepare_audio(model, waveform, sampling_rate, name)
    values, what = read_sensor(path, name)
    return prepare_sensor(model, values, f"{name} ({what})")


def read_image(path: str | os.PathLike, name: str | None = None) -> Image.Image:
    """The first frame of an image file, decoded, refusing huge and tiny ones before decoding."""
    name = name or _name(path)
    try:
        with Image.open(path) as image:
            width, height = image.size  # from the header: nothing is decoded yet
            if width * height > MAX_IMAGE_MEGAPIXELS * 1_000_000:
                raise UploadError(
                    f"{name} is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); the limit is "
                    f"{MAX_IMAGE_MEGAPIXELS} megapixels"
                )
            if min(width, height) < MIN_IMAGE_SIDE:
                raise UploadError(f"{name} is too small ({width}×{height}): at least {MIN_IMAGE_SIDE} pixels a side")
            image.seek(0)
            image.load()
            return image.copy()
    except UploadError:
        raise
    except Image.DecompressionBombError as error:
        raise UploadError(f"{name} is too large to decode safely") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise UploadError(f"{name} could not be read as an image (damaged, or not an image)") from error


def prepare_image(model: SpaceModel, image: Image.Image, name: str) -> PreparedInput:
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    pixels = model.processor(square, return_tensors="pt")["pixel_values"].float()
    size = f"{pixels.shape[-2]}×{pixels.shape[-1]}"
    cropped = "" if width == height else f", centre-cropped to {side}×{side}"
    return PreparedInput(pixels, f"{name}: {width}×{height}{cropped}, resized to {size}", "upper")


def read_audio(path: str | os.PathLike, name: str | None = None) -> tuple[np.ndarray, int]:
    """A mono float32 waveform and its sampling rate, refusing clips that are too short or too long before
    decoding them."""
    name = name or _name(path)
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise UploadError(f"{name} could not be read as audio (damaged, or not a sound file)") from error
    if not info.samplerate or info.frames <= 0:
        raise UploadError(f"{name} holds no audio samples")
    seconds = info.frames / info.samplerate
    if seconds < MIN_AUDIO_SECONDS:
        raise UploadError(f"{name} is too short ({seconds:.3f} s): at least {MIN_AUDIO_SECONDS} s")
    if seconds > MAX_AUDIO_SECONDS:
        raise UploadError(f"{name} is {seconds:.0f} s long; the limit is {MAX_AUDIO_SECONDS:.0f} s (cut it first)")
    try:
        data, sampling_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as error:
        raise UploadError(f"{name} could not be decoded as audio") from error
    if data.size == 0:
        raise UploadError(f"{name} holds no audio samples")
    if not np.isfinite(data).all():
        raise UploadError(f"{name} holds samples that are not finite numbers")
    return data.mean(axis=1), int(sampling_rate)


def resample(waveform: np.ndarray, rate: int, target: int) -> np.ndarray:
    """`waveform` from `rate` to `target` Hz with soxr (a requirement of the Space)."""
    if rate == target:
        return waveform
    try:
        import soxr
    except ImportError as error:
        raise UploadError(
            f"the clip is sampled at {rate} Hz and this viewmaker's front end needs {target} Hz; the Space resamples "
            "with soxr, which is not installed here (pip install soxr), so resample the clip first"
        ) from error
    return soxr.resample(waveform, rate, target).astype(np.float32)


def prepare_audio(model: SpaceModel, waveform: np.ndarray, sampling_rate: int, name: str) -> PreparedInput:
    extractor: LogMelFeatureExtractor = model.processor
    seconds = waveform.shape[0] / sampling_rate
    waveform = resample(waveform, sampling_rate, extractor.sampling_rate)
    features = extractor(waveform, sampling_rate=extractor.sampling_rate)["input_features"].float()
    window = extractor.max_length / extractor.sampling_rate
    what = [f"{name}: {seconds:.2f} s at {sampling_rate} Hz"]
    if sampling_rate != extractor.sampling_rate:
        what.append(f"resampled to {extractor.sampling_rate} Hz")
    if seconds > window + 1e-9:
        what.append(f"its first {window:.2f} s used")
    elif seconds < window - 1e-9:
        what.append(f"padded with silence to {window:.2f} s")
    what.append(f"log-mel {features.shape[-2]} mel bins × {features.shape[-1]} frames")
    return PreparedInput(features, ", ".join(what), "lower")


def read_sensor(path: str | os.PathLike, name: str | None = None) -> tuple[np.ndarray, str]:
    """A recording `[channels, time]` float32 from a `.ts` file (its first series) or a `.csv` file (one row per
    time step, one column per channel, an optional header row), and what was read."""
    name = name or _name(path)
    if Path(path).suffix.lower() == ".ts":
        try:
            values, labels, _ = read_ts_file(path)
        except UnicodeDecodeError as error:
            raise UploadError(f"{name} is not a text file: a .ts file is sktime's text format") from error
        except (ValueError, OSError) as error:
            # The reader names the file by its server path: the page names it by its own name.
            message = str(error).replace(str(path), name).replace(str(Path(path).resolve()), name)
            raise UploadError(f"{name} could not be read as a .ts file: {message}") from error
        what = f"series 1 of {values.shape[0]}, label {labels[0]}"
        return values[0], what
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UploadError(f"{name} is not a text file: a .csv file must be comma-separated text") from error
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and not _numeric_row(lines[0]):
        lines = lines[1:]  # a header
    # The limits, checked before the numbers are parsed.
    if len(lines) > MAX_SENSOR_SAMPLES:
        raise UploadError(f"{name} has {len(lines)} rows (time steps); the limit is {MAX_SENSOR_SAMPLES}")
    if lines and lines[0].count(",") + 1 > MAX_SENSOR_CHANNELS:
        raise UploadError(
            f"{name} has {lines[0].count(',') + 1} columns (channels); the limit is {MAX_SENSOR_CHANNELS}"
        )
    try:
        rows = [[float(v) if v.strip() else float("nan") for v in line.split(",")] for line in lines]
    except ValueError as error:
        raise UploadError(f"{name} could not be read as a .csv of numbers: {error}") from error
    if not rows:
        raise UploadError(f"{name} holds no rows of numbers")
    if len({len(row) for row in rows}) != 1:
        raise UploadError(f"{name}: its rows have different numbers of columns")
    values = np.asarray(rows, dtype=np.float32)  # [time, channels]
    if np.isinf(values).any() or np.isnan(values).all():
        raise UploadError(f"{name} holds values that are not finite numbers")
    fill_missing_values(values, name)
    return np.ascontiguousarray(values.T), f"{values.shape[0]} rows × {values.shape[1]} columns"


def _numeric_row(line: str) -> bool:
    try:
        [float(v) for v in line.split(",") if v.strip()]
    except ValueError:
        return False
    return True


def prepare_sensor(model: SpaceModel, values: np.ndarray, name: str) -> PreparedInput:
    """The recording as the viewmaker's input: its processor's spectrograms (the default's: the paper's STFT size, a
    hop for ~32 frames and the recording's own statistics), or the standardised raw signal."""
    channels, length = values.shape
    if channels > MAX_SENSOR_CHANNELS:
        raise UploadError(f"{name} has {channels} channels; the limit is {MAX_SENSOR_CHANNELS}")
    if length > MAX_SENSOR_SAMPLES:
        raise UploadError(f"{name} has {length} samples per channel; the limit is {MAX_SENSOR_SAMPLES}")
    if model.num_channels is not None and channels != model.num_channels:
        raise UploadError(
            f"{name} has {channels} channels, but this viewmaker was trained on {model.num_channels}: upload a "
            f"recording with {model.num_channels} channels"
        )
    what = [f"{name}: {channels} channels × {length} samples"]
    recording = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None]
    processor = model.processor
    if processor is None and model.viewmaker is not None:  # a raw-signal (1-D) viewmaker
        if length < 5:
            raise UploadError(f"{name} is too short ({length} samples): at least 5")
        features = (recording - recording.mean(-1, keepdim=True)) / recording.std(-1, keepdim=True).clamp_min(1e-6)
        return PreparedInput(features, ", ".join(what + ["each channel standardised"]), "upper")
    if processor is None:
        hop = max(1, length // (DEFAULT_SENSOR_FRAMES - 1))
        processor = SensorSpectrogramProcessor(num_channels=channels, n_fft=DEFAULT_SENSOR_N_FFT, hop_length=hop)
        if length > processor.n_fft // 2:
            processor.fit_statistics(recording.double())
    shortest = max(processor.n_fft // 2 + 1, 4 * processor.hop_length + 1)  # 5 frames, the viewmaker's least
    if length < shortest:
        raise UploadError(f"{name} is too short ({length} samples per channel): this viewmaker needs {shortest}")
    longest = MAX_SENSOR_FRAMES * processor.hop_length - 1
    if length > longest:
        recording = recording[..., :longest]
        what.append(f"its first {longest} samples used")
    features = processor(recording)["input_features"].float()
    what.append(
        f"log-spectrograms of {features.shape[-2]} frequency bins × {features.shape[-1]} frames"
        + (f" (channels 1–{MAX_CHANNEL_TILES} drawn)" if channels > MAX_CHANNEL_TILES else "")
    )
    return PreparedInput(features, ", ".join(what), "lower")


def discard_upload(path: str | os.PathLike | None, upload_root: str | os.PathLike) -> bool:
    """Delete an uploaded file, and its folder if that is left empty, but only inside `upload_root` (gradio's upload
    folder): a path from anywhere else is never touched. Returns whether a file was deleted."""
    if not path:
        return False
    root = Path(upload_root).resolve()
    target = Path(path).resolve()
    if root not in target.parents:
        return False
    try:
        target.unlink()
    except FileNotFoundError:
        return False
    parent = target.parent
    if parent != root:
        try:
            parent.rmdir()
        except OSError:
            pass  # not empty: another upload lives there
    return True


# ====================================================================================================== views
def check_request(budget: Any, norm: Any, seed: Any, count: Any) -> tuple[float, str, int, int]:
    """The controls' values, checked (they may come from the API, not from the page's widgets)."""
    try:
        budget = float(budget)
    except (TypeError, ValueError) as error:
        raise UploadError(f"the budget must be a number, got {budget!r}") from error
    if not 0 < budget <= MAX_BUDGET:
        raise UploadError(f"the budget must be above 0 and at most {MAX_BUDGET:g}, got {budget:g}")
    if norm not in BUDGET_NORMS:
        # The page shows L1 / L2 / Linf; the API may send either spelling.
        norm = {v.lower(): k for k, v in NORM_NAMES.items()}.get(str(norm).lower(), norm)
        if norm not in BUDGET_NORMS:
            raise UploadError(f"the budget norm must be one of {', '.join(NORM_NAMES.values())}, got {norm!r}")
    try:
        seed_value = seed if isinstance(seed, int) and not isinstance(seed, bool) else float(seed)
        if isinstance(seed_value, float):
            seed_value = int(seed_value) if seed_value.is_integer() else None
    except (TypeError, ValueError, OverflowError):
        seed_value = None
    if seed_value is None or not 0 <= seed_value <= MAX_SEED:
        raise UploadError(f"the seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    try:
        count_value = float(count)
    except (TypeError, ValueError) as error:
        raise UploadError(f"the number of views must be a whole number, got {count!r}") from error
    if not count_value.is_integer() or not 1 <= count_value <= MAX_VIEWS:
        raise UploadError(f"the number of views must be from 1 to {MAX_VIEWS}, got {count!r}")
    return budget, norm, seed_value, int(count_value)


@torch.no_grad()
def make_views(
    model: SpaceModel, prepared: PreparedInput, budget: float, norm: str, seed: int, count: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`count` views of the input from one call (noise drawn from a generator seeded with `seed`): the inputs
    (repeated), the views and the perturbations, each `[count, C, ...]`."""
    features = prepared.features
    viewmaker = model.viewmaker_for(int(features.shape[1]), norm)
    inputs = features.expand(count, *features.shape[1:]).contiguous()
    generator = torch.Generator().manual_seed(seed)
    output = viewmaker(inputs, generator=generator, distortion_budget=budget, return_dict=True)
    return inputs, output.views, output.perturbation


def stack_channels(values: torch.Tensor) -> torch.Tensor:
    """Per-channel spectrograms `[B, C, F, T]` as one picture per example, `[B, 1, C' * (F + 1) - 1, T]`: the first
    `MAX_CHANNEL_TILES` channels from top to bottom, each with its low frequencies at the bottom, a blank (NaN) row
    between them. `make_view_grid` would put them side by side, which makes a long recording's views a thin strip;
    it scales a cell's channels jointly either way."""
    values = values[:, :MAX_CHANNEL_TILES].flip(2)
    batch, channels, bins, frames = values.shape
    gap = torch.full((batch, channels, 1, frames), float("nan"), dtype=values.dtype)
    return torch.cat((values, gap), dim=2).reshape(batch, 1, channels * (bins + 1), frames)[:, :, :-1]


def spread_rows(picture: Image.Image, rows: int, gap: int) -> Image.Image:
    """`picture` cut into `rows` equal horizontal bands, put back with `gap` white pixels between them."""
    height = picture.height // rows
    spread = Image.new(picture.mode, (picture.width, height * rows + gap * (rows - 1)), "white")
    for row in range(rows):
        spread.paste(picture.crop((0, row * height, picture.width, (row + 1) * height)), (0, row * (height + gap)))
    return spread


def _grid_scale(cell: torch.Tensor, count: int, tall: int = 256) -> int:
    """A magnification that makes each cell (`[C, H, W]` or `[C, T]`) up to `tall` pixels tall, and the grid at most
    ~2,000 wide."""
    height, width = (cell.shape[0], cell.shape[1]) if cell.ndim == 2 else (cell.shape[1], cell.shape[2])
    return max(1, min(8, tall // max(height, 1), 2000 // max(count * (width + 2), 1)))


def render_views(
    model: SpaceModel, prepared: PreparedInput, budget: Any, norm: Any, seed: Any, count: Any
) -> tuple[Image.Image, str]:
    """The picture of `count` views side by side (one column per view: the input, the view, the perturbation
    amplified to the full grey range) and its caption (Markdown)."""
    budget, norm, seed, count = check_request(budget, norm, seed, count)
    try:
        inputs, views, perturbations = make_views(model, prepared, budget, norm, seed, count)
    except ValueError as error:  # the viewmaker's own checks (input size, values)
        raise UploadError(f"the viewmaker cannot take this input: {error}") from error
    drawn, origin = (inputs, views, perturbations), prepared.origin
    stacked = inputs.ndim == 4 and inputs.shape[1] not in (1, 3)
    if stacked:
        drawn, origin = tuple(stack_channels(x) for x in drawn), "upper"
    scale = _grid_scale(drawn[0][0], count, tall=400 if stacked else 256)
    grid = make_view_grid(*drawn, max_examples=count, scale=scale, origin=origin)
    if stacked:  # the gaps between channels would look like those between the input, view and perturbation rows
        grid = spread_rows(grid, rows=3, gap=4 * scale + 8)
    return grid, caption(model, prepared, budget, norm, seed, inputs, views, perturbations)


def caption(
    model: SpaceModel,
    prepared: PreparedInput,
    budget: float,
    norm: str,
    seed: int,
    inputs: torch.Tensor,
    views: torch.Tensor,
    perturbations: torch.Tensor,
) -> str:
    dims = tuple(range(1, perturbations.ndim))
    mean_abs = perturbations.abs().mean(dims).tolist()
    rms = perturbations.square().mean(dims).sqrt().tolist()
    peak = perturbations.abs().amax(dims).tolist()
    change = (views - inputs).abs().mean(dims).tolist()
    what = "pixels" if model.domain == "image" else "spectrogram" if prepared.origin == "lower" else "signal"
    lines = [
        f"**{len(mean_abs)} view{'s' if len(mean_abs) > 1 else ''}, budget ε = {budget:g} under "
        f"{NORM_NAMES[norm]}** ({NORM_MEANING[norm]}), noise seed {seed}.",
        "",
        f"Each column: the input (top), a view (middle), and its perturbation δ (bottom), **amplified** to the full "
        f"grey range (mid-grey is 0; amplification per view in the table). The budget bounds δ on the {what} "
        "the viewmaker sees."
        + (
            f" Within a cell, channels 1–{min(int(inputs.shape[1]), MAX_CHANNEL_TILES)} from top to bottom, each "
            "with its low frequencies at the bottom."
            if inputs.ndim == 4 and inputs.shape[1] not in (1, 3)
            else ""
        ),
        "",
        "| view | mean \\|δ\\| | RMS δ | max \\|δ\\| | amplified ×"
        + (" | mean \\|view − input\\| |" if model.clamp else " |"),
        "|---|---|---|---|---|" + ("---|" if model.clamp else ""),
    ]
    for i, (m, r, p, c) in enumerate(zip(mean_abs, rms, peak, change), start=1):
        amplification = 0.5 / p if p > 0 else float("inf")
        row = f"| {i} | {m:.4f} | {r:.4f} | {p:.4f} | {amplification:.1f} |"
        lines.append(row + (f" {c:.4f} |" if model.clamp else ""))
    if model.clamp:
        lines += ["", "Views are clamped to [0, 1], so where δ pushes a pixel past either end the view changes less."]
    lines += ["", f"Input: {prepared.description}."]
    return "\n".join(lines)


# ====================================================================================================== examples
def example_image(size: int = 160) -> Image.Image:
    """A small colourful picture drawn from code (a sky, a sun, hills, a house), the same at every call."""
    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    for y in range(size):
        t = y / (size - 1)
        draw.line([(0, y), (size, y)], fill=(int(70 + 110 * t), int(130 + 90 * t), int(230 - 30 * t)))
    s = size / 160
    draw.ellipse([118 * s, 14 * s, 148 * s, 44 * s], fill=(255, 214, 64))
    draw.polygon(
        [(0, 118 * s), (50 * s, 86 * s), (110 * s, 112 * s), (160 * s, 92 * s), (160 * s, 160 * s), (0, 160 * s)],
        fill=(64, 150, 72),
    )
    draw.rectangle([30 * s, 96 * s, 74 * s, 136 * s], fill=(196, 64, 48))
    draw.polygon([(24 * s, 98 * s), (52 * s, 74 * s), (80 * s, 98 * s)], fill=(120, 40, 36))
    draw.rectangle([46 * s, 114 * s, 58 * s, 136 * s], fill=(92, 56, 30))
    draw.rectangle([62 * s, 104 * s, 70 * s, 112 * s], fill=(250, 240, 160))
    return image


def example_audio(seconds: float = 2.0, sampling_rate: int = 16000) -> np.ndarray:
    """Two seconds of a synthetic voice-like sound: three 'syllables' of a harmonic tone with a gliding pitch, then a
    whistle, over faint noise, the same at every call."""
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    rng = np.random.default_rng(0)
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sampling_rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = np.clip(np.sin(2 * np.pi * 1.5 * t), 0, None) ** 2 * (t < 1.4)
    whistle = 0.3 * np.sin(2 * np.pi * (1800 + 600 * t) * t) * ((t > 1.5) & (t < 1.9))
    clip = 0.25 * voice * syllables + whistle + 0.01 * rng.standard_normal(t.size)
    return (0.8 * clip / np.abs(clip).max()).astype(np.float32)


def example_sensor(length: int = 400, rate: float = 50.0) -> np.ndarray:
    """Eight seconds of a synthetic wrist sensor at 50 Hz, 6 channels (accelerometer x, y, z and gyroscope x, y, z):
    walking, then running, the same at every call. `[6, length]` float32."""
    rng = np.random.default_rng(0)
    t = np.arange(length) / rate
    step = np.where(t < t[-1] / 2, 1.8, 2.9)  # steps per second
    phase = 2 * np.pi * np.cumsum(step) / rate
    accelerometer = [np.sin(phase), 0.5 * np.sin(2 * phase + 1.0), 9.81 / 4 + 0.8 * np.cos(phase)]
    gyroscope = [0.6 * np.sin(phase + 0.4), 0.3 * np.sin(3 * phase), 0.2 * np.cos(phase)]
    values = np.stack(accelerometer + gyroscope) * (1 + (t >= t[-1] / 2))
    return (values + 0.05 * rng.standard_normal(values.shape)).astype(np.float32)


EXAMPLE_NAMES = {"image": "example.png", "audio": "example.wav", "sensor": "example.ts"}
EXAMPLE_DESCRIPTIONS = {
    "image": "a picture drawn by code (sky, sun, hills, a house)",
    "audio": "2 s of a synthetic voice-like sound and a whistle, 16 kHz",
    "sensor": "8 s of a synthetic 6-channel wrist sensor at 50 Hz, walking then running",
}


def example_bytes(domain: str) -> bytes:
    """The example of `domain` as the bytes of a file in the format an upload would have."""
    if domain == "image":
        buffer = io.BytesIO()
        example_image().save(buffer, format="PNG")
        return buffer.getvalue()
    if domain == "audio":
        buffer = io.BytesIO()
        soundfile.write(buffer, example_audio(), 16000, format="WAV", subtype="PCM_16")
        return buffer.getvalue()
    if domain == "sensor":
        values = example_sensor()
        header = [
            "# A synthetic wrist-sensor recording (hf-viewmaker Space example): accelerometer x y z, gyroscope x y z",
            "@problemName SpaceExample",
            "@timeStamps false",
            "@missing false",
            "@univariate false",
            f"@dimensions {values.shape[0]}",
            "@equalLength true",
            f"@seriesLength {values.shape[1]}",
            "@classLabel true walk_then_run",
            "@data",
        ]
        series = ":".join(",".join(f"{v:.4f}" for v in channel) for channel in values)
        return ("\n".join(header + [series + ":walk_then_run"]) + "\n").encode()
    raise ValueError(f"unknown domain {domain!r}")


def write_example(domain: str, folder: str | os.PathLike) -> Path:
    """Write the example of `domain` to `folder` (as a user would upload it) and return its path."""
    path = Path(folder) / EXAMPLE_NAMES[domain]
    path.write_bytes(example_bytes(domain))
    return path


def prepare_example(model: SpaceModel) -> PreparedInput:
    """The example of `model`'s domain as its input, made in memory (no file is read or written)."""
    name = f"the example, {EXAMPLE_DESCRIPTIONS[model.domain]}"
    if model.domain == "image":
        return prepare_image(model, example_image(), name)
    if model.domain == "audio":
        return prepare_audio(model, example_audio(), 16000, name)
    values = example_sensor()
    if model.num_channels is not None and model.num_channels != values.shape[0]:
        # A trained sensor viewmaker of another channel count: the example's channels, tiled or cut to fit.
        values = np.resize(values, (model.num_channels, values.shape[1])).astype(np.float32)
        name += f", its channels repeated to make {model.num_channels}"
    return prepare_sensor(model, values, name)
