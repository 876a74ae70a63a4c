"""Speech datasets: LibriSpeech from the Hub (or any audio dataset), and the paper's speech transfer sets.

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
* Pretraining: LibriSpeech on the Hub, ``openslr/librispeech_asr`` (columns ``file``, ``audio``, ``text``,
  ``speaker_id``, ``chapter_id``, ``id``; config ``clean`` with splits ``train.100`` (the paper's 100 h),
  ``train.360``, ``validation`` (dev-clean), ``test``; config ``all`` with ``train.clean.100``, ``train.clean.360``,
  ``train.other.500`` (960 h together: pass ``train_split="train.clean.100+train.clean.360+train.other.500"``),
  ``validation.clean``, ...). Non-streaming `load_dataset` downloads every split of a config whichever one is asked
  for (a `datasets` limitation), so for the 960 h set consider ``streaming=True`` and :class:`SpeechStream`.
  Any other Hub audio dataset, parquet / csv / json files, or a local folder of audio files with one sub-folder per
  class (:func:`load_audio_folder`, a torchcodec-free stand-in for the ``audiofolder`` builder) work the same way.
* Transfer (docs/method.md §4.3), from local folders in the official archive layouts
  (:func:`load_speech_transfer_split`): LibriSpeech dev-clean speaker ID (Hub or a local
  ``LibriSpeech/dev-clean``), AudioMNIST, Google Speech Commands v0.01, VoxCeleb1 identification and Fluent Speech
  Commands.

Batching
--------
:class:`SpeechExamples` yields variable-length waveforms; :func:`collate_speech` fits them to the feature extractor's
``max_length`` (`LogMelFeatureExtractor.fit_length`, the paper's first-or-last crop / zero padding) and stacks them,
so a batch is ``{"input_values": [B, max_length], "lengths", "labels", "indices", "num_skipped"}``. The log-mel
itself is *not* computed in the data loader: the training loop calls ``feature_extractor.log_mel(input_values)`` on
its device (one batched STFT on the accelerator instead of per-clip librosa on CPU workers, docs/method.md §8.6), after
any waveform views (`WaveformCropNoiseViews`, which takes ``lengths``) and, for spectral views, between
``mel_power`` and ``to_log_normalized``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
from datasets import (
    Audio,
    ClassLabel,
    Dataset,
    DatasetDict,
    IterableDataset,
    IterableDatasetDict,
    concatenate_datasets,
    load_dataset,
)

from ..processing.feature_extraction_logmel import LogMelFeatureExtractor

logger = logging.getLogger(__name__)

__all__ = [
    "AUDIO_EXTENSIONS",
    "AUDIO_MNIST_TEST_SPEAKERS",
    "LIBRISPEECH_HUB_ID",
    "SPEECH_COMMANDS_V1_WORDS",
    "SPEECH_TRANSFER_DATASETS",
    "SpeechCollator",
    "SpeechExamples",
    "SpeechStream",
    "collate_speech",
    "decode_audio",
    "librispeech_speaker_id_split",
    "load_audio_folder",
    "load_audio_mnist",
    "load_fluent_speech_commands",
    "load_google_speech_commands",
    "load_librispeech_folder",
    "load_librispeech_speaker_id",
    "load_speech_splits",
    "load_speech_transfer_split",
    "load_voxceleb1",
]

LIBRISPEECH_HUB_ID = "openslr/librispeech_asr"

#: File types `soundfile` reads (libsndfile >= 1.1 also reads MP3).
AUDIO_EXTENSIONS = (".flac", ".wav", ".ogg", ".mp3", ".aiff", ".aif")

FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json", ".arrow": "arrow"}


# ==================================================================================================== decoding
def _describe(value: Any, row: int) -> str:
    """The file a value comes from, for error messages: its path, else its row."""
    if isinstance(value, (str, os.PathLike)):
        return str(value)
    if isinstance(value, Mapping) and value.get("path"):
        return str(value["path"])
    return f"row {row}"


def decode_audio(value: Any, where: str | None = None) -> tuple[np.ndarray, int]:
    """Decode one stored audio value to ``(mono float32 waveform [T], sampling_rate)`` with `soundfile`.

    ``value``: a path, raw bytes, ``{"bytes", "path"}`` (the `Audio(decode=False)` form; the bytes win when both are
    there), or an already-decoded ``{"array", "sampling_rate"}``. Multi-channel audio is averaged to mono. Raises
    ValueError naming ``where`` (default: the path) when the audio cannot be read, is empty, or holds NaN/inf.
    """
    where = where or _describe(value, -1)
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
    except Exception as error:  # noqa: BLE001 - libsndfile and its callers raise many types for a broken file
        raise ValueError(f"could not read the audio at {where}: {error}") from error
    if array.ndim != 1 or array.shape[0] == 0:
        raise ValueError(f"the audio at {where} is empty (shape {array.shape})")
    if not np.isfinite(array).all():
        raise ValueError(f"the audio at {where} contains NaN or infinite samples")
    return np.ascontiguousarray(array, dtype=np.float32), int(sampling_rate)


def _undecoded(dataset, audio_column: str):
    """``dataset`` with an `Audio` column cast to ``Audio(decode=False)`` (nothing else changes)."""
    features = dataset.features
    if features is not None and isinstance(features.get(audio_column), Audio) and features[audio_column].decode:
        return dataset.cast_column(audio_column, Audio(decode=False))
    return dataset


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


def _load_split(name, config, split, cache_dir, streaming):
    """One split of a Hub / local dataset; ``"a+b"`` concatenates splits a and b."""
    parts = [s.strip() for s in split.split("+")]
    loaded = []
    for part in parts:
        try:
            loaded.append(load_dataset(name, config, split=part, cache_dir=cache_dir, streaming=streaming))
        except ValueError as error:
            if "split" in str(error).lower():
                raise ValueError(f"dataset {name!r} (config {config!r}) has no split {part!r}: {error}") from error
            raise
    return loaded[0] if len(loaded) == 1 else concatenate_datasets(loaded)


def _split_names(name, config, cache_dir) -> list[str] | None:
    try:
        from datasets import get_dataset_split_names

        return list(get_dataset_split_names(name, config, cache_dir=cache_dir))
    except Exception:  # noqa: BLE001 - offline, gated, or no split metadata: the caller falls back
        return None


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
) -> DatasetDict | IterableDatasetDict:
    """Load a training and (when there is one) a validation split of a speech dataset, audio left undecoded.

    Exactly one source, as in `load_image_splits`:

    * ``dataset_name``: a Hub id (``openslr/librispeech_asr`` with ``dataset_config_name="clean"``,
      ``train_split="train.100"``) or a local folder of data files. A split may be ``"a+b+c"``, concatenated (the
      960 h set). ``streaming=True`` gives `IterableDataset` splits (wrap them in :class:`SpeechStream`).
      ``dataset_name="audiofolder"`` is refused: pass ``train_dir`` (the builder needs torchcodec);
    * ``train_dir`` (+ ``validation_dir``): class sub-folders of audio files (:func:`load_audio_folder`; both splits
      share the label names of all their folders);
    * ``train_file`` (+ ``validation_file``): parquet (e.g. files in the Hub's LibriSpeech schema), csv, json or
      arrow, whose audio column holds bytes / paths.

    ``validation_split`` defaults to "validation" when the dataset has one, else "test", else none. An `Audio`
    column is cast to ``Audio(decode=False)`` so that `datasets` never calls torchcodec.
    """
    if sum(x is not None for x in (dataset_name, train_dir, train_file)) != 1:
        raise ValueError("give exactly one data source: --dataset_name, --train_dir or --train_file")
    if dataset_name == "audiofolder":
        raise ValueError(
            "the 'audiofolder' builder needs torchcodec to store audio; pass --train_dir (and --validation_dir) with "
            "one sub-folder per class instead"
        )
    if dataset_name is not None:
        train = _load_split(dataset_name, dataset_config_name, train_split, cache_dir, streaming)
        if validation_split is None:
            names = _split_names(dataset_name, dataset_config_name, cache_dir)
            candidates = [s for s in ("validation", "test") if names is None or s in names]
            validation = None
            for candidate in candidates:
                try:
                    validation = _load_split(dataset_name, dataset_config_name, candidate, cache_dir, streaming)
                    break
                except ValueError:
                    continue
        else:
            validation = _load_split(dataset_name, dataset_config_name, validation_split, cache_dir, streaming)
        splits = {"train": train} | ({"validation": validation} if validation is not None else {})
    elif train_dir is not None:
        if streaming:
            raise ValueError("streaming is for Hub datasets; a local folder is read directly")
        names = _class_folder_names(train_dir, validation_dir)
        splits = {"train": load_audio_folder(train_dir, names)}
        if validation_dir is not None:
            splits["validation"] = load_audio_folder(validation_dir, names)
    else:
        suffix = Path(train_file).suffix
        if suffix not in FILE_BUILDERS:
            raise ValueError(f"--train_file {train_file}: unsupported extension {suffix!r} ({sorted(FILE_BUILDERS)})")
        data_files = {"train": train_file} | ({"validation": validation_file} if validation_file else {})
        raw = load_dataset(FILE_BUILDERS[suffix], data_files=data_files, cache_dir=cache_dir, streaming=streaming)
        splits = dict(raw)
    for split, dataset in splits.items():
        if dataset.features is not None and audio_column not in dataset.features:
            raise ValueError(
                f"--audio_column_name {audio_column!r} is not a column of the {split} split ({list(dataset.features)})"
            )
        splits[split] = _undecoded(dataset, audio_column)
    return IterableDatasetDict(splits) if streaming else DatasetDict(splits)


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


def _check_label_map(label_map: Mapping) -> dict:
    label_map = dict(label_map)
    if sorted(label_map.values()) != list(range(len(label_map))):
        raise ValueError("`label_map` must map its labels onto 0..K-1, each once")
    return label_map


# ==================================================================================================== examples
class SpeechExamples(torch.utils.data.Dataset):
    """A `datasets` speech split as training examples: ``{"waveform", "labels", "indices", "num_skipped"}`` per item.

    ``waveform`` is the whole clip, float32 ``[T]`` at ``sampling_rate`` (batch them with :func:`collate_speech`);
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
    ``num_skipped`` that :func:`collate_speech` sums for an exact total; the attribute counts only what the current
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
            raise TypeError("a streaming dataset is iterable, not indexable: wrap it in `SpeechStream`")
        for name, column in (("audio_column_name", audio_column), ("label_column_name", label_column)):
            if column is not None and column not in dataset.column_names:
                raise ValueError(f"--{name} {column!r} is not a column of the dataset ({dataset.column_names})")
        self.dataset = _undecoded(dataset, audio_column)
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
        where = _describe(value, index)
        waveform, rate = decode_audio(value, where)
        if rate != self.sampling_rate:
            raise _SamplingRateError(
                f"the audio at {where} is sampled at {rate} Hz, not the expected {self.sampling_rate} Hz "
                "(nothing is resampled: resample the dataset, or use the dataset's own rate)"
            )
        return waveform

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} examples")
        index = int(index) % len(self)
        skipped = 0
        row = index
        while True:
            if row in self.bad_indices:
                error = None
            else:
                try:
                    waveform = self._read(row)
                    break
                except _SamplingRateError:
                    raise
                except ValueError as err:
                    if not self.skip_bad_examples:
                        raise
                    error = err
            if error is not None:
                self.bad_indices.add(row)
                logger.warning("skipping unreadable example %d (using the next readable one): %s", row, error)
            skipped += 1
            self.num_skipped += 1
            if skipped >= min(self.max_replacement_tries, len(self)):
                raise ValueError(
                    f"{skipped} consecutive unreadable examples from row {index} on (the last: row {row}); "
                    "is the audio column right?"
                )
            row = (row + 1) % len(self)
        return {
            "waveform": torch.from_numpy(waveform),
            "labels": torch.tensor(int(self._labels[row])),
            "indices": torch.tensor(row),
            "num_skipped": torch.tensor(skipped),
        }


class _SamplingRateError(ValueError):
    """A clip at the wrong rate: never skipped."""


class SpeechStream(torch.utils.data.IterableDataset):
    """A streaming (`IterableDataset`) speech split, e.g. LibriSpeech 960 h, yielding the items of `SpeechExamples`.

    ``labels`` need an explicit ``label_map`` (a stream cannot be scanned for its labels); without one they are -1.
    ``indices`` are -1: a stream has no stable global row index (use a map-style split for InstDisc's memory bank).
    With ``skip_bad_examples`` an unreadable clip is simply passed over (the data loader fills the batch from the next
    ones, so batch sizes stay fixed); the next item then reports it in ``num_skipped``. Sharding across data-loader
    workers is done by the wrapped `datasets.IterableDataset`; across processes, apply
    `datasets.distributed.split_dataset_by_node` first. :meth:`set_epoch` forwards to the stream (for its shuffling).
    """

    def __init__(
        self,
        dataset: IterableDataset,
        sampling_rate: int = 16000,
        audio_column: str = "audio",
        label_column: str | None = None,
        label_map: Mapping | None = None,
        skip_bad_examples: bool = False,
    ):
        if label_column is not None and label_map is None:
            raise ValueError("a stream cannot be scanned for its labels: pass `label_map` (or label_column=None)")
        self.dataset = _undecoded(dataset, audio_column)
        self.sampling_rate = int(sampling_rate)
        self.audio_column = audio_column
        self.label_column = label_column
        self.label_map = _check_label_map(label_map) if label_map is not None else {}
        self.skip_bad_examples = bool(skip_bad_examples)
        self.num_skipped = 0

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __iter__(self):
        pending = 0
        for position, example in enumerate(self.dataset):
            value = example[self.audio_column]
            where = _describe(value, position)
            try:
                waveform, rate = decode_audio(value, where)
            except ValueError as error:
                if not self.skip_bad_examples:
                    raise
                logger.warning("skipping unreadable example at %s: %s", where, error)
                self.num_skipped += 1
                pending += 1
                continue
            if rate != self.sampling_rate:
                raise ValueError(
                    f"the audio at {where} is sampled at {rate} Hz, not the expected {self.sampling_rate} Hz "
                    "(nothing is resampled)"
                )
            label = -1
            if self.label_column is not None:
                raw = example[self.label_column]
                if raw not in self.label_map:
                    raise ValueError(f"label {raw!r} of {where} is not in `label_map`")
                label = self.label_map[raw]
            yield {
                "waveform": torch.from_numpy(waveform),
                "labels": torch.tensor(label),
                "indices": torch.tensor(-1),
                "num_skipped": torch.tensor(pending),
            }
            pending = 0


# ==================================================================================================== batching
class SpeechCollator:
    """Batches speech items for the training loop; see :func:`collate_speech`."""

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


def collate_speech(
    feature_extractor: LogMelFeatureExtractor, training: bool = False, generator: torch.Generator | None = None
) -> SpeechCollator:
    """A `DataLoader` ``collate_fn`` for speech items (``SpeechExamples`` / ``SpeechStream``).

    Returns batches ``{"input_values": float32 [B, max_length], "lengths": [B] (real samples kept, the rest is zero
    padding), "labels": [B], "indices": [B], "num_skipped": scalar}``. The clips are fitted with
    ``feature_extractor.fit_length``: zero-padded at the end, or cut to their first ``max_length`` samples, or in
    training (``training=True``) a coin flip per clip between the first and the last ``max_length`` samples
    (docs/method.md §4.2). The log-mel is left to the training loop, on its device:
    ``feature_extractor.log_mel(batch["input_values"].to(device))`` -> ``[B, 1, size, size]``.

    The coin flips come from ``generator``, else from the global torch RNG. With data-loader workers, leave
    ``generator`` out and seed the `DataLoader` instead: torch seeds each worker's global RNG from it, so the flips are
    reproducible and differ between workers (a generator given here is copied into every worker, and all workers
    would then repeat the same flips).
    """
    return SpeechCollator(feature_extractor, training=training, generator=generator)


# ==================================================================================================== transfer sets
def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _paths_dataset(paths: Sequence[Path], labels: Sequence[int], names: Sequence[str], **extra) -> Dataset:
    data = {"audio": [str(p) for p in paths], "label": list(labels)} | {k: list(v) for k, v in extra.items()}
    return Dataset.from_dict(data).cast_column("label", ClassLabel(names=list(names)))


# ---------------------------------------------------------------- LibriSpeech dev-clean speaker identification
def load_librispeech_folder(data_dir: str | os.PathLike, subset: str = "dev-clean") -> Dataset:
    """A subset of LibriSpeech in its official archive layout, in the Hub's schema.

    ``<data_dir>/LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utterance>.flac`` (``data_dir`` may
    also be the ``LibriSpeech`` folder itself) with ``<speaker>-<chapter>.trans.txt`` transcripts. Columns ``file``,
    ``audio`` (path), ``text``, ``speaker_id``, ``chapter_id``, ``id``; rows sorted by ``id``.
    """
    root = Path(data_dir)
    folder = next((p for p in (root / "LibriSpeech" / subset, root / subset) if p.is_dir()), None)
    if folder is None:
        raise FileNotFoundError(f"LibriSpeech {subset} not found: expected {root / 'LibriSpeech' / subset}")
    files = sorted(folder.glob("*/*/*.flac"), key=lambda p: p.stem)
    if not files:
        raise ValueError(f"no .flac files under {folder}/<speaker>/<chapter>/")
    texts: dict[str, str] = {}
    for transcript in folder.glob("*/*/*.trans.txt"):
        for line in transcript.read_text().splitlines():
            key, _, text = line.partition(" ")
            texts[key] = text
    speakers, chapters = zip(*((int(p.stem.split("-")[0]), int(p.stem.split("-")[1])) for p in files))
    return Dataset.from_dict(
        {
            "file": [str(p) for p in files],
            "audio": [str(p) for p in files],
            "text": [texts.get(p.stem, "") for p in files],
            "speaker_id": list(speakers),
            "chapter_id": list(chapters),
            "id": [p.stem for p in files],
        }
    )


def librispeech_speaker_id_split(
    dataset: Dataset,
    split: str,
    speaker_column: str = "speaker_id",
    id_column: str = "id",
    train_fraction: float = 0.8,
    seed: int = 42,
) -> Dataset:
    """The paper's speaker-ID transfer split of LibriSpeech dev-clean (docs/method.md §4.3), with a ``label`` column.

    What is implemented, exactly (the original ``LibriSpeechTransfer`` on torchaudio's ``LIBRISPEECH``):

    1. utterances are ordered by their id string (``"<speaker>-<chapter>-<utterance>"``, torchaudio's sorted walker);
    2. one ``np.random.RandomState(seed)`` (42) is created; speakers are visited in ascending numeric order, and for
       each, the array of positions of its utterances (in the order of step 1) is shuffled in place with
       ``rs.shuffle``; the first ``int(train_fraction * n)`` go to "train", the rest to "test" (so every speaker is in
       both, 80/20 of its utterances; the generator's state runs on from one speaker to the next);
    3. "train" (or "test") rows come speaker by speaker in that shuffled order; ``label`` is the speaker's rank among
       the sorted speaker ids of the whole set (a `ClassLabel` named by speaker id, identical for both splits).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    ids = list(dataset[id_column])
    order = sorted(range(len(ids)), key=ids.__getitem__)
    speakers = np.array([int(s) for s in dataset[speaker_column]], dtype=np.int64)[order]
    rs = np.random.RandomState(seed)
    chosen: list[int] = []
    for speaker in np.unique(speakers):  # ascending
        positions = np.where(speakers == speaker)[0]
        rs.shuffle(positions)
        cut = int(train_fraction * len(positions))
        chosen.extend((positions[:cut] if split == "train" else positions[cut:]).tolist())
    unique = [int(s) for s in np.unique(speakers)]
    rank = {s: i for i, s in enumerate(unique)}
    rows = [order[p] for p in chosen]
    subset = dataset.select(rows)
    labels = [rank[int(s)] for s in subset[speaker_column]]
    subset = subset.add_column("label", labels)
    return subset.cast_column("label", ClassLabel(names=[str(s) for s in unique]))


def load_librispeech_speaker_id(
    split: str, data_dir: str | os.PathLike | None = None, cache_dir: str | None = None
) -> Dataset:
    """LibriSpeech dev-clean speaker identification (40 speakers, per-speaker 80/20, RandomState 42): "train"/"test".

    From a local ``LibriSpeech/dev-clean`` folder when ``data_dir`` is given, else from the Hub
    (``openslr/librispeech_asr``, config ``clean``, split ``validation``). See :func:`librispeech_speaker_id_split`.
    """
    if data_dir is not None:
        dataset = load_librispeech_folder(data_dir, "dev-clean")
    else:
        dataset = load_dataset(LIBRISPEECH_HUB_ID, "clean", split="validation", cache_dir=cache_dir)
        dataset = _undecoded(dataset, "audio")
    return librispeech_speaker_id_split(dataset, split)


# ---------------------------------------------------------------- AudioMNIST
#: The 12 test speakers of the paper's AudioMNIST split (docs/method.md §4.3); the other 48 (36 train + 12 validation
#: in the AudioMNIST split files) form the training set.
AUDIO_MNIST_TEST_SPEAKERS = (26, 52, 60, 18, 32, 42, 5, 13, 22, 33, 45, 51)


def load_audio_mnist(data_dir: str | os.PathLike, split: str) -> Dataset:
    """AudioMNIST (48 kHz, 10 digits) from its repository layout:
    ``<data_dir>/data/<speaker>/<digit>_<speaker>_<index>.wav`` (``data_dir`` may also be the ``data`` folder).
    "test" = the 12 speakers of ``AUDIO_MNIST_TEST_SPEAKERS``, "train" = every other speaker. Columns ``audio``
    (path), ``label`` (the digit), ``speaker``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(data_dir)
    root = root / "data" if (root / "data").is_dir() else root
    files = sorted(root.glob("*/*.wav"))
    if not files:
        raise FileNotFoundError(f"no AudioMNIST files <speaker>/<digit>_<speaker>_<index>.wav under {root}")
    paths, labels, speakers = [], [], []
    for path in files:
        parts = path.stem.split("_")
        if len(parts) != 3 or not all(p.isdigit() for p in parts) or int(parts[1]) != int(path.parent.name):
            raise ValueError(f"{path}: not an AudioMNIST file name <digit>_<speaker>_<index>.wav in its speaker folder")
        speaker = int(parts[1])
        if (speaker in AUDIO_MNIST_TEST_SPEAKERS) == (split == "test"):
            paths.append(path)
            labels.append(int(parts[0]))
            speakers.append(speaker)
    if not paths:
        raise ValueError(f"no AudioMNIST {split} speakers under {root}")
    return _paths_dataset(paths, labels, [str(d) for d in range(10)], speaker=speakers)


# ---------------------------------------------------------------- Google Speech Commands v0.01
#: The 30 words of Speech Commands v0.01, sorted (class ids 0..29); no silence or unknown class (docs/method.md §4.3).
SPEECH_COMMANDS_V1_WORDS = (
    "bed", "bird", "cat", "dog", "down", "eight", "five", "four", "go", "happy", "house", "left", "marvin", "nine",
    "no", "off", "on", "one", "right", "seven", "sheila", "six", "stop", "three", "tree", "two", "up", "wow", "yes",
    "zero",
)  # fmt: skip


def load_google_speech_commands(data_dir: str | os.PathLike, split: str) -> Dataset:
    """Google Speech Commands v0.01 from its archive layout: ``<data_dir>/<word>/<hash>_nohash_<n>.wav`` with
    ``validation_list.txt`` and ``testing_list.txt`` (paths relative to ``data_dir``).

    Splits: "validation" and "test" are the listed files; "train" is every other file of the 30 words (the archive
    ships no training list); "train+validation" is both, the paper's transfer training set. ``_background_noise_``
    and folders of other words (v0.02's extra words) are ignored. Columns ``audio`` (path), ``label``
    (`ClassLabel` of ``SPEECH_COMMANDS_V1_WORDS``), ``speaker`` (the hash).
    """
    if split not in ("train", "validation", "test", "train+validation"):
        raise ValueError(f"split must be train, validation, test or train+validation, got {split!r}")
    root = Path(data_dir)
    validation = set(_read_lines(root / "validation_list.txt"))
    testing = set(_read_lines(root / "testing_list.txt"))
    paths, labels, speakers = [], [], []
    for label, word in enumerate(SPEECH_COMMANDS_V1_WORDS):
        folder = root / word
        if not folder.is_dir():
            raise FileNotFoundError(f"Speech Commands word folder {folder} not found")
        for path in sorted(folder.glob("*.wav")):
            key = f"{word}/{path.name}"
            part = "test" if key in testing else "validation" if key in validation else "train"
            if part == split or (split == "train+validation" and part != "test"):
                paths.append(path)
                labels.append(label)
                speakers.append(path.name.split("_")[0])
    if not paths:
        raise ValueError(f"no Speech Commands {split} files under {root}")
    return _paths_dataset(paths, labels, SPEECH_COMMANDS_V1_WORDS, speaker=speakers)


# ---------------------------------------------------------------- VoxCeleb1 identification
def load_voxceleb1(data_dir: str | os.PathLike, split: str) -> Dataset:
    """VoxCeleb1 speaker identification (1,251 speakers): ``<data_dir>/iden_split.txt`` (lines ``<set> <id>/<video>/
    <n>.wav``) with the audio under ``<data_dir>/wav/``. "train" = sets 1 and 2, "test" = set 3. Labels are the sorted
    speaker ids of the whole list (the original built a map per split; both agree since every speaker has utterances
    in every set)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(data_dir)
    entries = [line.split() for line in _read_lines(root / "iden_split.txt")]
    names = sorted({path.split("/")[0] for _, path in entries})
    keep = {"train": {"1", "2"}, "test": {"3"}}[split]
    rows = [(root / "wav" / path, names.index(path.split("/")[0])) for s, path in entries if s in keep]
    return _paths_dataset([p for p, _ in rows], [label for _, label in rows], names)


# ---------------------------------------------------------------- Fluent Speech Commands
FLUENT_INTENTS = ("action", "object", "location")


def load_fluent_speech_commands(data_dir: str | os.PathLike, split: str, caller_intent: str | None = None) -> Dataset:
    """Fluent Speech Commands: ``<data_dir>/data/{train,valid,test}_data.csv`` (columns ``path``, ``speakerId``,
    ``action``, ``object``, ``location``; paths relative to ``data_dir``). "train" = train + valid, "test" = test.
    ``caller_intent`` picks the label: action (6), object (14) or location (4); class ids are the sorted values over
    all three files."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if caller_intent not in FLUENT_INTENTS:
        raise ValueError(f"caller_intent must be one of {FLUENT_INTENTS}, got {caller_intent!r}")
    root = Path(data_dir)
    tables = {}
    for part in ("train", "valid", "test"):
        path = root / "data" / f"{part}_data.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found")
        with open(path, newline="") as handle:
            tables[part] = list(csv.DictReader(handle))
    names = sorted({row[caller_intent] for rows in tables.values() for row in rows})
    rows = [row for part in (("train", "valid") if split == "train" else ("test",)) for row in tables[part]]
    return _paths_dataset(
        [root / row["path"] for row in rows],
        [names.index(row[caller_intent]) for row in rows],
        names,
        speaker=[row["speakerId"] for row in rows],
    )


def _librispeech_speaker_id_transfer(data_dir, split, **kwargs) -> Dataset:
    return load_librispeech_speaker_id(split, data_dir, **kwargs)


def _speech_commands_transfer(data_dir, split, **kwargs) -> Dataset:
    return load_google_speech_commands(data_dir, "train+validation" if split == "train" else split, **kwargs)


#: Transfer sets of docs/method.md §4.3: name -> (loader(data_dir, split, **kwargs), key of
#: ``DATASET_NORMALIZATION_STATS``). Splits are "train" and "test" as the paper used them.
SPEECH_TRANSFER_DATASETS: Mapping[str, tuple[Callable[..., Dataset], str]] = {
    "librispeech_speaker_id": (_librispeech_speaker_id_transfer, "librispeech"),
    "audio_mnist": (load_audio_mnist, "audio_mnist"),
    "google_speech_commands": (_speech_commands_transfer, "google_speech_commands"),
    "voxceleb1": (load_voxceleb1, "voxceleb1"),
    "fluent_speech_commands": (load_fluent_speech_commands, "fluent_speech_commands"),
}


def load_speech_transfer_split(name: str, data_dir: str | os.PathLike | None, split: str, **kwargs) -> Dataset:
    """One split ("train" / "test") of a speech transfer set of the paper, with columns ``audio`` and ``label``.

    ``name``: librispeech_speaker_id (``data_dir`` None = from the Hub), audio_mnist, google_speech_commands (its
    "train" is the paper's training_list + validation_list), voxceleb1, fluent_speech_commands (needs
    ``caller_intent=``). Featurize with ``LogMelFeatureExtractor.for_dataset(<the matching statistics key>)``, whose
    sampling rate is the one to give `SpeechExamples` (48 kHz for AudioMNIST).
    """
    if name not in SPEECH_TRANSFER_DATASETS:
        raise ValueError(f"unknown speech transfer set {name!r}; known: {sorted(SPEECH_TRANSFER_DATASETS)}")
    if data_dir is None and name != "librispeech_speaker_id":
        raise ValueError(f"{name} is read from a local folder in its official layout: pass data_dir")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return SPEECH_TRANSFER_DATASETS[name][0](data_dir, split, **kwargs)
