"""Speech: audio decoded without torchcodec, speech splits from the Hub / files / folders, examples and batching.

Audio decoding
--------------
`datasets` >= 4 decodes its `Audio` feature only through `torchcodec`, which needs FFmpeg and (for the published
wheels) CUDA libraries; even *writing* an `Audio` column (and therefore the `audiofolder` builder) imports it. This
module never lets `datasets` touch the audio: an `Audio` column is cast to ``Audio(decode=False)``, which hands over
the stored ``{"bytes", "path"}``, and :func:`decode_audio` reads the FLAC / WAV / OGG bytes (or the file) with
`soundfile` (libsndfile, bundled in its wheels). A column of plain paths, or of already-decoded
``{"array", "sampling_rate"}`` dicts, works too. Nothing is resampled: a clip whose rate differs from the expected
one is an error naming the file and both rates. Multi-channel files are averaged to mono.

Where the data comes from
-------------------------
Pretraining: LibriSpeech on the Hub, ``openslr/librispeech_asr`` (columns ``file``, ``audio``, ``text``,
``speaker_id``, ``chapter_id``, ``id``; config ``clean`` with splits ``train.100`` (the paper's 100 h),
``train.360``, ``validation`` (dev-clean), ``test``; config ``all`` with ``train.clean.100``, ``train.clean.360``,
``train.other.500`` (960 h together: pass ``train_split="train.clean.100+train.clean.360+train.other.500"``),
``validation.clean``, ...), through :func:`load_speech_splits`. Non-streaming `load_dataset` downloads every split
of a config whichever one is asked for (a `datasets` limitation). Any other Hub audio dataset, parquet / csv / json
files, or a local folder of audio files with one sub-folder per class (:func:`load_audio_folder`, a torchcodec-free
stand-in for the ``audiofolder`` builder) work the same way (`hf_viewmaker.data.sources`). The paper's transfer sets
are in `hf_viewmaker.data.speech_transfer`.

Batching
--------
:class:`SpeechExamples` yields variable-length waveforms; :class:`SpeechCollator` fits them to the feature extractor's
``max_length`` (`LogMelFeatureExtractor.fit_length`, the paper's first-or-last crop / zero padding) and stacks them,
so a batch is ``{"input_values": [B, max_length], "lengths", "labels", "indices", "num_skipped"}``. The log-mel
itself is *not* computed in the data loader: the training loop calls ``feature_extractor.log_mel(input_values)`` on
its device (one batched STFT on the accelerator instead of per-clip librosa on CPU workers, docs/method.md §8.6), after
any waveform views (`WaveformCropNoiseViews`, which takes ``lengths``) and, for spectral views, between
``mel_power`` and ``to_log_normalized``.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
from datasets import ClassLabel, Dataset, DatasetDict, IterableDataset, IterableDatasetDict

from ..processing.feature_extraction_logmel import LogMelFeatureExtractor
from .sources import check_single_source, first_readable, load_data_files, load_hub_splits, undecoded

logger = logging.getLogger(__name__)

__all__ = [
    "AUDIO_EXTENSIONS",
    "SamplingRateError",
    "SpeechCollator",
    "SpeechExamples",
    "decode_audio",
    "extend_label_map",
    "load_audio_folder",
    "load_speech_splits",
    "read_clip",
]

#: Shards of a streamed local audio folder, enough for the processes and data-loader workers of one machine.
FOLDER_STREAM_SHARDS = 64

#: File types `soundfile` reads (libsndfile >= 1.1 also reads MP3).
AUDIO_EXTENSIONS = (".flac", ".wav", ".ogg", ".mp3", ".aiff", ".aif")


# ==================================================================================================== decoding
def _describe(value: Any, fallback: str) -> str:
    """The file a value comes from, for error messages: its path, else `fallback` (e.g. its row)."""
    if isinstance(value, (str, os.PathLike)):
        return str(value)
    if isinstance(value, Mapping) and value.get("path"):
        return str(value["path"])
    return fallback


def decode_audio(value: Any, where: str | None = None) -> tuple[np.ndarray, int]:
    """Decode one stored audio value to ``(mono float32 waveform [T], sampling_rate)`` with `soundfile`.

    ``value``: a path, raw bytes, ``{"bytes", "path"}`` (the `Audio(decode=False)` form; the bytes win when both are
    there), or an already-decoded ``{"array", "sampling_rate"}``. Multi-channel audio is averaged to mono. Raises
    ValueError naming ``where`` (default: the path) when the audio cannot be read, is empty, or holds NaN/inf.
    """
    where = where or _describe(value, "row -1")
    try:
        if isinstance(value, Mapping) and value.get("array") is not None:
            array = np.asarray(value["array"], dtype=np.float32)
            sampling_rate = int(value["sampling_rate"])
            if array.ndim == 2:  # datasets' decoded layout is [channels, time]
                array = array.mean(axis=0)
        else:
            if isinstance(value, (bytes, bytearray)):
                source = io.BytesIO(value)
            elif isinstance(value, Mapping) and value.get("bytes") is not None:
                source = io.BytesIO(value["bytes"])
            elif isinstance(value, Mapping) and value.get("path"):
                source = value["path"]
            elif isinstance(value, (str, os.PathLike)):
                source = value
            else:
                raise TypeError(f"not an audio value: {type(value).__name__}")
            array, sampling_rate = soundfile.read(source, dtype="float32", always_2d=True)  # [time, channels]
            array = array.mean(axis=1) if array.shape[1] > 1 else array[:, 0]
    except Exception as error:
        raise ValueError(f"could not read the audio at {where}: {error}") from error
    if array.ndim != 1 or array.shape[0] == 0:
        raise ValueError(f"the audio at {where} is empty (shape {array.shape})")
    if not np.isfinite(array).all():
        raise ValueError(f"the audio at {where} contains NaN or infinite samples")
    return np.ascontiguousarray(array, dtype=np.float32), int(sampling_rate)


# ==================================================================================================== loading
def load_audio_folder(data_dir: str | os.PathLike, label_names: Sequence[str] | None = None) -> Dataset:
    """A folder of audio files as a `Dataset` with columns ``audio`` (absolute path) and ``label`` (`ClassLabel`).

    The layout of the ``audiofolder`` builder: ``<data_dir>/<class>/<...>/<file>.wav`` (any depth below the class
    folder; files directly in ``data_dir`` get no class and are refused). Classes are the sorted first-level folder
    names, or ``label_names`` (to share one label map between splits; a folder not among them is an error). The
    ``audiofolder`` builder itself cannot be used: it encodes its `Audio` column through torchcodec.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"audio folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise ValueError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {root}")
    classes = []
    for path in files:
        parts = path.relative_to(root).parts
        if len(parts) < 2:
            raise ValueError(f"{path} lies directly in {root}: put each file in a sub-folder named after its class")
        classes.append(parts[0])
    names = sorted(set(classes)) if label_names is None else [str(n) for n in label_names]
    unknown = sorted(set(classes) - set(names))
    if unknown:
        raise ValueError(f"class folders {unknown} under {root} are not among the label names {names}")
    features_dict = {"audio": [str(p.resolve()) for p in files], "label": [names.index(c) for c in classes]}
    dataset = Dataset.from_dict(features_dict)
    return dataset.cast_column("label", ClassLabel(names=names))


def _class_folder_names(*dirs: str | os.PathLike | None) -> list[str]:
    names = set()
    for directory in dirs:
        if directory is not None and Path(directory).is_dir():
            names.update(p.name for p in Path(directory).iterdir() if p.is_dir())
    return sorted(names)


def load_speech_splits(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_dir: str | None = None,
    validation_dir: str | None = None,
    train_file: str | None = None,
    validation_file: str | None = None,
    train_split: str = "train",
    validation_split: str | None = None,
    audio_column: str = "audio",
    cache_dir: str | None = None,
    streaming: bool = False,
    data_dir: str | None = None,
) -> DatasetDict | IterableDatasetDict:
    """Load a training and (when there is one) a validation split of a speech dataset, audio left undecoded.

    Exactly one source, as in `load_image_splits`:

    * ``dataset_name``: a Hub id (``openslr/librispeech_asr`` with ``dataset_config_name="clean"``,
      ``train_split="train.100"``) or a local folder of data files. A split may be ``"a+b+c"``, concatenated (the
      960 h set). ``streaming=True`` gives `IterableDataset` splits (which `SpeechExamples` cannot index: see
      `hf_viewmaker.data.streaming`).
      ``dataset_name="audiofolder"`` is refused: pass ``train_dir`` (the builder needs torchcodec);
    * ``train_dir`` (+ ``validation_dir``): class sub-folders of audio files (:func:`load_audio_folder`; both splits
      share the label names of all their folders); streamed, the file list is cut into shards;
    * ``train_file`` (+ ``validation_file``): parquet (e.g. files in the Hub's LibriSpeech schema), csv, json or
      arrow, whose audio column holds bytes / paths.

    ``validation_split`` defaults to "validation" when the dataset has one, else "test", else none. An `Audio`
    column is cast to ``Audio(decode=False)`` so that `datasets` never calls torchcodec.
    """
    check_single_source(dataset_name, train_dir, train_file)
    if dataset_name == "audiofolder":
        raise ValueError(
            "the 'audiofolder' builder needs torchcodec to store audio; pass --train_dir (and --validation_dir) with "
            "one sub-folder per class instead"
        )
    if dataset_name is not None:
        splits = load_hub_splits(
            dataset_name, dataset_config_name, train_split, validation_split, cache_dir, streaming, data_dir
        )
    elif train_dir is not None:
        names = _class_folder_names(train_dir, validation_dir)
        splits = {"train": load_audio_folder(train_dir, names)}
        if validation_dir is not None:
            splits["validation"] = load_audio_folder(validation_dir, names)
        if streaming:  # the file list is small; shards let processes and workers split the files between them
            splits = {split: _as_stream(dataset) for split, dataset in splits.items()}
    else:
        # An empty --validation_file means none.
        splits = dict(load_data_files(train_file, validation_file or None, cache_dir, streaming))
    for split, dataset in splits.items():
        if dataset.features is not None and audio_column not in dataset.features:
            raise ValueError(
                f"--audio_column_name {audio_column!r} is not a column of the {split} split ({list(dataset.features)})"
            )
        splits[split] = undecoded(dataset, audio_column)
    return IterableDatasetDict(splits) if streaming else DatasetDict(splits)


def _as_stream(dataset: Dataset, max_shards: int = FOLDER_STREAM_SHARDS) -> IterableDataset:
    return dataset.to_iterable_dataset(num_shards=max(1, min(max_shards, len(dataset))))


# ==================================================================================================== labels
def _raw_labels(dataset: Dataset, label_column: str) -> list:
    values = list(dataset[label_column])
    feature = dataset.features[label_column]
    if isinstance(feature, ClassLabel):
        return [feature.int2str(int(v)) for v in values]
    return values


def _build_label_map(dataset: Dataset, label_column: str) -> dict:
    feature = dataset.features[label_column]
    if isinstance(feature, ClassLabel):  # keep the dataset's own class ids
        return {name: i for i, name in enumerate(feature.names)}
    values = set(_raw_labels(dataset, label_column))
    if None in values:
        raise ValueError(f"the label column {label_column!r} has missing values")
    return {value: i for i, value in enumerate(sorted(values))}


def extend_label_map(label_map: Mapping, dataset: Dataset, label_column: str | None) -> dict:
    """`label_map` and, after its ids, the labels of `dataset`'s `label_column` it lacks (in sorted order): one map
    for examples read apart (a stream's leading rows beside its validation split)."""
    extended = dict(label_map)
    if label_column is not None:
        for label in sorted(set(_raw_labels(dataset, label_column)) - set(extended), key=str):
            extended[label] = len(extended)
    return extended


def _check_label_map(label_map: Mapping) -> dict:
    label_map = dict(label_map)
    if sorted(label_map.values()) != list(range(len(label_map))):
        raise ValueError("`label_map` must map its labels onto 0..K-1, each once")
    return label_map


# ==================================================================================================== examples
class SpeechExamples(torch.utils.data.Dataset):
    """A `datasets` speech split as training examples: ``{"waveform", "labels", "indices", "num_skipped"}`` per item.

    ``waveform`` is the whole clip, float32 ``[T]`` at ``sampling_rate`` (batch them with :class:`SpeechCollator`);
    ``labels`` is the label column mapped to 0..K-1 by :attr:`label_map` (-1 without a label column); ``indices`` is
    the row the waveform comes from; ``num_skipped`` is the number of unreadable rows passed over to produce it
    (0 normally, see ``skip_bad_examples``).

    Args:
        dataset: a split with an audio column (`Audio` feature, ``{"bytes", "path"}`` dicts, or paths).
        sampling_rate: the rate every clip must have (16,000 for LibriSpeech; 48,000 for AudioMNIST). A clip at
            another rate raises ValueError naming the file and both rates, always (it is a configuration mistake,
            not a broken file, so ``skip_bad_examples`` does not hide it); nothing is resampled.
        audio_column: the audio column ("audio").
        label_column: the label column, e.g. "speaker_id" for LibriSpeech or "label"; `None` for unlabelled data.
        label_map: raw label -> 0..K-1. By default a `ClassLabel` column keeps its class ids (raw labels are the class
            names) and any other column gets its sorted distinct values numbered in order. Pass the training split's
            :attr:`label_map` to a validation split so both use the same ids; a label missing from it is an error.
        skip_bad_examples: what to do with a clip that cannot be decoded (corrupt, truncated, empty, NaN samples).
            False (default): raise ValueError naming the file. True: log a warning (once per file and process), add
            one to :attr:`num_skipped`, remember the row in :attr:`bad_indices`, and return the next readable row
            instead (index + 1, + 2, ... wrapping around; at most ``max_replacement_tries`` tries), with *that* row's
            label and index.

    Why replacement: every item is a real, finite clip, so no batch ever holds NaN, zeros or garbage, and batches keep
    their size (dropping items in the collate would make batch sizes differ between processes, which breaks the
    cross-process gathering of SimCLR and the memory bank). The replacement is a deterministic function of the index,
    so a resumed run sees the same data. A pre-scan would need a full decode of every clip (hours for 960 h). The cost
    is that the replacement row may appear twice in an epoch (once for itself), and the bad row's memory-bank slot is
    never written. With data-loader workers, each worker has its own copy of this object, so read the per-batch
    ``num_skipped`` that :class:`SpeechCollator` sums for an exact total; the attribute counts only what the current
    process decoded.
    """

    def __init__(
        self,
        dataset: Dataset,
        sampling_rate: int = 16000,
        audio_column: str = "audio",
        label_column: str | None = "speaker_id",
        label_map: Mapping | None = None,
        skip_bad_examples: bool = False,
        max_replacement_tries: int = 32,
    ):
        if isinstance(dataset, IterableDataset):
            raise TypeError("a streaming dataset is iterable, not indexable: load the split with streaming=False")
        for name, column in (("audio_column_name", audio_column), ("label_column_name", label_column)):
            if column is not None and column not in dataset.column_names:
                raise ValueError(f"--{name} {column!r} is not a column of the dataset ({dataset.column_names})")
        self.dataset = undecoded(dataset, audio_column)
        self.sampling_rate = int(sampling_rate)
        self.audio_column = audio_column
        self.label_column = label_column
        self.skip_bad_examples = bool(skip_bad_examples)
        self.max_replacement_tries = int(max_replacement_tries)
        self.num_skipped = 0
        self.bad_indices: set[int] = set()
        if label_column is None:
            self.label_map: dict = {}
            self._labels = np.full(len(dataset), -1, dtype=np.int64)
        else:
            self.label_map = (
                _check_label_map(label_map) if label_map is not None else _build_label_map(dataset, label_column)
            )
            raw = _raw_labels(dataset, label_column)
            missing = sorted({v for v in raw if v not in self.label_map}, key=str)
            if missing:
                raise ValueError(f"labels {missing[:10]} of column {label_column!r} are not in `label_map`")
            self._labels = np.array([self.label_map[v] for v in raw], dtype=np.int64)

    @property
    def label_names(self) -> list:
        """Raw labels in id order: ``label_names[i]`` is the label with id ``i``."""
        return sorted(self.label_map, key=self.label_map.__getitem__)

    @property
    def num_labels(self) -> int:
        return len(self.label_map)

    def __len__(self) -> int:
        return len(self.dataset)

    def _read(self, index: int) -> np.ndarray:
        value = self.dataset[index][self.audio_column]
        return read_clip(value, self.sampling_rate, f"row {index}")

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} examples")
        row, waveform, skipped = first_readable(
            int(index) % len(self),
            len(self),
            self._read,
            self.skip_bad_examples,
            self.bad_indices,
            self.max_replacement_tries,
            never_skip=(SamplingRateError,),
        )
        self.num_skipped += skipped
        return {
            "waveform": torch.from_numpy(waveform),
            "labels": torch.tensor(int(self._labels[row])),
            "indices": torch.tensor(row),
            "num_skipped": torch.tensor(skipped),
        }


class SamplingRateError(ValueError):
    """A clip at the wrong rate: a configuration mistake, never skipped as an unreadable file."""


def read_clip(value: Any, sampling_rate: int, where: str) -> np.ndarray:
    """The mono waveform of one stored audio value (see :func:`decode_audio`), which must be sampled at
    `sampling_rate`: a clip at another rate raises :class:`SamplingRateError` naming the file (else `where`, e.g. its
    row) and both rates."""
    where = _describe(value, where)
    waveform, rate = decode_audio(value, where)
    if rate != sampling_rate:
        raise SamplingRateError(
            f"the audio at {where} is sampled at {rate} Hz, not the expected {sampling_rate} Hz "
            "(nothing is resampled: resample the dataset, or use the dataset's own rate)"
        )
    return waveform


# ==================================================================================================== batching
class SpeechCollator:
    """A `DataLoader` ``collate_fn`` for speech items (`SpeechExamples`); a plain object, so it pickles into workers.

    ``SpeechCollator(feature_extractor, training=False, generator=None)(items)`` returns batches ``{"input_values":
    float32 [B, max_length], "lengths": [B] (real samples kept, the rest is zero padding), "labels": [B], "indices":
    [B], "num_skipped": scalar}``. The clips are fitted with ``feature_extractor.fit_length``: zero-padded at the end,
    or cut to their first ``max_length`` samples, or in training (``training=True``) a coin flip per clip between the
    first and the last ``max_length`` samples (docs/method.md §4.2). The log-mel is left to the training loop, on its
    device: ``feature_extractor.log_mel(batch["input_values"].to(device))`` -> ``[B, 1, size, size]``.

    The coin flips come from ``generator``, else from the global torch RNG. With data-loader workers, leave
    ``generator`` out and seed the `DataLoader` instead: torch seeds each worker's global RNG from it, so the flips are
    reproducible and differ between workers (a generator given here is copied into every worker, and all workers
    would then repeat the same flips).
    """

    def __init__(
        self,
        feature_extractor: LogMelFeatureExtractor,
        training: bool = False,
        generator: torch.Generator | None = None,
    ):
        self.feature_extractor = feature_extractor
        self.training = bool(training)
        self.generator = generator

    def __call__(self, items: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        if len(items) == 0:
            raise ValueError("cannot collate an empty batch")
        waveforms = [item["waveform"] for item in items]
        input_values = self.feature_extractor.fit_length(
            waveforms, training=self.training, generator=self.generator, device="cpu"
        )
        max_length = self.feature_extractor.max_length
        return {
            "input_values": input_values,
            "lengths": torch.tensor([min(int(w.shape[0]), max_length) for w in waveforms], dtype=torch.long),
            "labels": torch.stack([torch.as_tensor(item["labels"]) for item in items]).long(),
            "indices": torch.stack([torch.as_tensor(item["indices"]) for item in items]).long(),
            "num_skipped": torch.tensor(sum(int(item.get("num_skipped", 0)) for item in items)),
        }
