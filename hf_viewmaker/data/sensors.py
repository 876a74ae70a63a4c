"""Wearable-sensor data: Pamap2 (docs/method.md §4.4) and any other labelled multichannel time series, as random
class-balanced windows.

Where the data comes from
-------------------------
Pamap2 ("PAMAP2 Physical Activity Monitoring", UCI Machine Learning Repository, dataset 231, CC BY 4.0) is read from
its official archive layout, ``<data_dir>/PAMAP2_Dataset/Protocol/subject101.dat`` ... ``subject109.dat``: one
whitespace-separated text file per subject, 54 columns per row at 100 Hz: timestamp (s), activity id, heart rate
(bpm), then 17 columns for each of three IMUs (hand, chest, ankle): temperature, 3-D acceleration (±16 g), 3-D
acceleration (±6 g), 3-D gyroscope, 3-D magnetometer, 4 orientation values. Missing values are ``NaN`` (the heart
rate is sampled at about 9 Hz, so most of its rows are NaN; IMUs drop out now and then). :func:`download_pamap2`
fetches and unpacks the UCI zip, only when called.

Datasets of fixed-length labelled series (e.g. the UEA archive's BasicMotions, in the sktime ``.ts`` format that
sktime and aeon ship) are read whole, one item per series, with :func:`read_ts_file` and :class:`SeriesExamples`.

Windows are drawn as in the original code (a random subject, a uniformly random activity, a random 10 s window,
``examples_per_epoch`` draws per epoch), but reproducibly: item ``i`` of epoch ``e`` is a deterministic function of
``(seed, e, i)``, so a resumed run sees exactly the data an uninterrupted one would. Featurize the windows on the
training device with `SensorSpectrogramProcessor` (``hf_viewmaker.processing.sensor_processing``).
"""

from __future__ import annotations

import logging
import os
import shutil
import urllib.request
import zipfile
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import torch

logger = logging.getLogger(__name__)

__all__ = [
    "PAMAP2_ACTIVITIES",
    "PAMAP2_CHANNEL_NAMES",
    "PAMAP2_SPLITS",
    "PAMAP2_URL",
    "Pamap2Windows",
    "SeriesExamples",
    "TimeSeriesWindows",
    "download_pamap2",
    "fill_missing_values",
    "pamap2_subject_path",
    "read_pamap2_subject",
    "read_ts_file",
]

#: The 11 activities the paper classifies, id -> name; they map to classes 0..10 in this order (docs/method.md §4.4).
#: Every other id (0 = transient, 9-11 and 18-20 = optional activities, 17 = ironing, commented out in the original)
#: is dropped. The original declared ``NUM_CLASSES = 12``, one output never used; here there are 11 classes.
PAMAP2_ACTIVITIES: Mapping[int, str] = MappingProxyType(
    {
        1: "lying",
        2: "sitting",
        3: "standing",
        4: "walking",
        5: "running",
        6: "cycling",
        7: "Nordic walking",
        12: "ascending stairs",
        13: "descending stairs",
        16: "vacuum cleaning",
        24: "rope jumping",
    }
)

#: Subject split of the original code: 105 for validation (the split the paper reports), 106 never used there.
PAMAP2_SPLITS: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {
        "train": (101, 102, 103, 104, 107, 108, 109),
        "train_small": (101,),
        "validation": (105,),
        "test": (106,),
    }
)

_IMU_COLUMNS = (
    ["temperature"]
    + [f"acc16_{a}" for a in "xyz"]
    + [f"acc6_{a}" for a in "xyz"]
    + [f"gyro_{a}" for a in "xyz"]
    + [f"mag_{a}" for a in "xyz"]
    + [f"orientation_{i}" for i in range(1, 5)]
)
#: The 52 channels: the 52 columns after timestamp and activity id (the orientation columns, which the dataset's
#: documentation calls invalid, included, as in the original).
PAMAP2_CHANNEL_NAMES: tuple[str, ...] = ("heart_rate",) + tuple(
    f"{imu}_{name}" for imu in ("hand", "chest", "ankle") for name in _IMU_COLUMNS
)
PAMAP2_NUM_COLUMNS = 54
PAMAP2_SAMPLING_RATE = 100

#: The UCI download (a zip holding ``PAMAP2_Dataset.zip``, or the dataset folder itself in older mirrors).
PAMAP2_URL = "https://archive.ics.uci.edu/static/public/231/pamap2+physical+activity+monitoring.zip"


# ==================================================================================================== reading
def fill_missing_values(values: np.ndarray, where: str = "data") -> np.ndarray:
    """Fill NaN / inf in a ``[time, channels]`` float array, in place, per channel: linear interpolation between the
    neighbouring finite values (by row position, i.e. assuming regular sampling, as pandas' default ``interpolate()``
    in the original), and the nearest finite value before the first / after the last one (where the original left
    NaN). A channel with no finite value at all becomes 0, with a warning naming it. Returns ``values``."""
    for channel in range(values.shape[1]):
        column = values[:, channel]
        missing = ~np.isfinite(column)
        if not missing.any():
            continue
        present = np.flatnonzero(~missing)
        if present.size == 0:
            logger.warning("%s: channel %d has no finite value at all; it is set to 0", where, channel)
            column[:] = 0.0
            continue
        column[missing] = np.interp(np.flatnonzero(missing), present, column[present])
    return values


def pamap2_subject_path(data_dir: str | os.PathLike, subject: int) -> Path:
    """``<data_dir>/PAMAP2_Dataset/Protocol/subject<id>.dat`` (``data_dir`` may also be ``PAMAP2_Dataset`` itself or
    its ``Protocol`` folder)."""
    root = Path(data_dir)
    for protocol in (root / "PAMAP2_Dataset" / "Protocol", root / "Protocol", root):
        if protocol.is_dir() and protocol.name == "Protocol":
            return protocol / f"subject{subject}.dat"
    return root / "PAMAP2_Dataset" / "Protocol" / f"subject{subject}.dat"


def read_pamap2_subject(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One Pamap2 ``subject10X.dat`` file: ``(values float32 [N, 52], activity ids int64 [N])``, every row kept, with
    missing values filled by :func:`fill_missing_values` over the whole recording. Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Pamap2 subject file not found: {path}")
    try:
        frame = pd.read_csv(path, sep=r"\s+", header=None, dtype=np.float64, na_values=["NaN", "nan"])
    except Exception as error:  # noqa: BLE001 - pandas raises several types for malformed text
        raise ValueError(f"could not parse the Pamap2 file {path}: {error}") from error
    if frame.shape[1] != PAMAP2_NUM_COLUMNS:
        raise ValueError(f"{path}: expected {PAMAP2_NUM_COLUMNS} columns per row, found {frame.shape[1]}")
    table = frame.to_numpy()
    activity = table[:, 1]
    if not np.isfinite(activity).all():
        raise ValueError(f"{path}: the activity column (2nd) has missing values")
    values = np.ascontiguousarray(table[:, 2:], dtype=np.float32)
    return fill_missing_values(values, str(path)), activity.astype(np.int64)


# ==================================================================================================== windows
@dataclass
class _Recording:
    """The usable parts of one recording: the rows of every run (a maximal stretch of one class) that can hold a
    window, concatenated, and per class the run starts and the cumulative number of window starts."""

    name: str
    values: np.ndarray  # [M, C] float32
    classes: np.ndarray  # class ids with at least one window, ascending
    run_starts: dict  # class -> int64 [R] offsets into `values`
    cumulative: dict  # class -> int64 [R] cumulative window-start counts


def _make_recording(name: str, values: np.ndarray, labels: np.ndarray, window_size: int) -> _Recording | None:
    """Split ``labels`` (class ids, -1 = dropped) into runs and keep those at least ``window_size`` long."""
    change = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(labels)]])
    pieces, run_starts, cumulative = [], {}, {}
    offset = 0
    for start, end in zip(starts.tolist(), ends.tolist()):
        label = int(labels[start])
        if label < 0 or end - start < window_size:
            continue
        pieces.append(values[start:end])
        run_starts.setdefault(label, []).append(offset)
        cumulative.setdefault(label, []).append(end - start - window_size + 1)
        offset += end - start
    if not pieces:
        return None
    return _Recording(
        name=name,
        values=np.ascontiguousarray(np.concatenate(pieces), dtype=np.float32),
        classes=np.array(sorted(run_starts), dtype=np.int64),
        run_starts={k: np.asarray(v, dtype=np.int64) for k, v in run_starts.items()},
        cumulative={k: np.cumsum(v, dtype=np.int64) for k, v in cumulative.items()},
    )


class _BalancedWindows(torch.utils.data.Dataset):
    """Random class-balanced windows over recordings; items ``{"values": [C, W], "labels", "indices"}``."""

    def __init__(
        self,
        recordings: Sequence[_Recording],
        label_names: Sequence,
        window_size: int,
        examples_per_epoch: int,
        seed: int,
        epoch: int,
    ):
        if not recordings:
            raise ValueError(f"no recording has a single run of one class of at least {window_size} samples")
        for name, value in (("window_size", window_size), ("examples_per_epoch", examples_per_epoch)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"`seed` must be an integer >= 0, got {seed!r}")
        self.recordings = list(recordings)
        self.label_names = list(label_names)
        self.window_size = int(window_size)
        self.examples_per_epoch = int(examples_per_epoch)
        self.seed = int(seed)
        self.set_epoch(epoch)

    @property
    def num_channels(self) -> int:
        return int(self.recordings[0].values.shape[1])

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch``'s windows from now on. Call it before each epoch's iterator is created: data-loader
        workers copy this object when they start (so with ``persistent_workers=True`` they would keep the old one)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"`epoch` must be an integer >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.examples_per_epoch

    def locate(self, index: int, epoch: int | None = None) -> tuple[int, int, int]:
        """Where item ``index`` of ``epoch`` (default: the current one) comes from: ``(recording, class, start)``.

        A function of ``(seed, epoch, index)`` only: a fresh ``np.random.default_rng([seed, epoch, index])`` draws a
        recording uniformly, then a class uniformly among those the recording has a window of, then a window start
        uniformly among every start that keeps the window inside one run of that class.
        """
        if not 0 <= index < self.examples_per_epoch:
            raise IndexError(f"index {index} out of range for {self.examples_per_epoch} examples per epoch")
        rng = np.random.default_rng([self.seed, self.epoch if epoch is None else int(epoch), int(index)])
        which = int(rng.integers(len(self.recordings)))
        recording = self.recordings[which]
        label = int(recording.classes[rng.integers(len(recording.classes))])
        cumulative = recording.cumulative[label]
        k = int(rng.integers(int(cumulative[-1])))
        run = int(np.searchsorted(cumulative, k, side="right"))
        before = int(cumulative[run - 1]) if run > 0 else 0
        return which, label, int(recording.run_starts[label][run]) + k - before

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        which, label, start = self.locate(int(index))
        window = self.recordings[which].values[start : start + self.window_size]  # [W, C]
        return {
            "values": torch.from_numpy(np.ascontiguousarray(window.T)),
            "labels": torch.tensor(label),
            "indices": torch.tensor(int(index)),
        }


class Pamap2Windows(_BalancedWindows):
    """Random 10 s windows of Pamap2 (docs/method.md §4.4): ``{"values": float32 [52, 1000], "labels", "indices"}``.

    Each item picks a subject of the split uniformly, then uniformly one of the 11 classes that subject has a window
    of (so classes are balanced whenever every subject has every class; a subject missing a class gives its draws to
    its other classes), then a window uniformly among all ``window_size``-sample windows lying inside one contiguous
    run of that activity. Item ``i`` of epoch ``e`` depends only on ``(seed, e, i)`` (see :meth:`locate`); call
    :meth:`set_epoch` each epoch. ``labels`` are 0..10 in the order of ``PAMAP2_ACTIVITIES``; ``indices`` is ``i``.

    Data: the 52 columns after timestamp and activity id; NaNs filled per subject and channel over the whole
    recording (:func:`fill_missing_values`), so no window ever holds NaN; rows of other activities dropped.

    Differences from the original: its windows were cut from all the rows of the chosen activity concatenated, so
    a window could straddle two separate bouts of the activity (the gap, often a transient period, removed); here a
    window never crosses an activity boundary or a removed stretch, and runs shorter than a window are unused. Its
    draws came from the global NumPy RNG and ignored the index, so they were not reproducible per item. Edge NaNs
    (before the first / after the last measurement of a channel) are filled with the nearest value.

    Args:
        data_dir: the folder holding ``PAMAP2_Dataset/Protocol/`` (or ``PAMAP2_Dataset`` itself).
        split: "train" (101-104, 107-109), "train_small" (101), "validation" (105) or "test" (106).
        subjects: subject ids to use instead of ``split``'s (e.g. in tests).
        window_size: samples per window (1,000 = 10 s at 100 Hz).
        examples_per_epoch: items per epoch; default 10,000 for the training splits and 50,000 otherwise (as in the
            original).
        seed, epoch: see above.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike,
        split: str = "train",
        subjects: Sequence[int] | None = None,
        window_size: int = 1000,
        examples_per_epoch: int | None = None,
        seed: int = 0,
        epoch: int = 0,
    ):
        if subjects is None:
            if split not in PAMAP2_SPLITS:
                raise ValueError(f"unknown Pamap2 split {split!r}; known: {sorted(PAMAP2_SPLITS)}")
            subjects = PAMAP2_SPLITS[split]
        if examples_per_epoch is None:
            examples_per_epoch = 10_000 if split.startswith("train") else 50_000
        paths = [pamap2_subject_path(data_dir, int(subject)) for subject in subjects]
        missing = [str(path) for path in paths if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"Pamap2 subject file(s) not found: {', '.join(missing)}")
        recordings = []
        for path in paths:
            values, activity = read_pamap2_subject(path)
            labels = np.full(activity.shape, -1, dtype=np.int64)
            for label, activity_id in enumerate(PAMAP2_ACTIVITIES):
                labels[activity == activity_id] = label
            recording = _make_recording(path.stem, values, labels, int(window_size))
            if recording is None:
                logger.warning("%s has no run of a used activity of %s samples; it is left out", path, window_size)
            else:
                recordings.append(recording)
        self.subjects = [int(s) for s in subjects]
        self.split = split
        super().__init__(recordings, list(PAMAP2_ACTIVITIES.values()), window_size, examples_per_epoch, seed, epoch)

    @property
    def activity_ids(self) -> list[int]:
        """Pamap2 activity id of each class: ``activity_ids[label]``."""
        return list(PAMAP2_ACTIVITIES)


# ==================================================================================================== generic
def _read_table(path: Path, label_column: str | int) -> tuple[pd.DataFrame, str]:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FileNotFoundError(f"time-series file not found: {path}")
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path), label_column
        if suffix == ".csv":
            return pd.read_csv(path), label_column
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                for key in ("values", "labels"):
                    if key not in archive:
                        raise ValueError(f"missing array {key!r} (it has {list(archive.keys())})")
                values, labels = np.asarray(archive["values"]), np.asarray(archive["labels"])
        elif suffix == ".npy":
            array = np.load(path, allow_pickle=False)
            if array.ndim != 2 or array.shape[1] < 2:
                raise ValueError(f"expected a [time, channels + 1] array, got shape {array.shape}")
            values, labels = array[:, :-1], array[:, -1]
        else:
            raise ValueError(f"unsupported extension {suffix!r} (.parquet, .csv, .npz, .npy)")
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error
    except Exception as error:  # noqa: BLE001 - readers raise many types for a broken file
        raise ValueError(f"could not read {path}: {error}") from error
    if values.ndim != 2 or labels.shape != (values.shape[0],):
        raise ValueError(
            f"{path}: `values` must be [time, channels] and `labels` [time], got {values.shape}, {labels.shape}"
        )
    frame = pd.DataFrame(values, columns=[f"channel_{i}" for i in range(values.shape[1])])
    frame["__label__"] = labels
    return frame, "__label__"


def _plain(value):
    """Label values as plain Python scalars (integral floats become ints, as CSV gives floats next to NaN)."""
    if isinstance(value, (np.floating, float)) and float(value).is_integer():
        return int(value)
    return value.item() if isinstance(value, np.generic) else value


class TimeSeriesWindows(_BalancedWindows):
    """Random class-balanced windows of any labelled multichannel time series, like :class:`Pamap2Windows`.

    Each file holds time-ordered rows (one row per time step, regularly sampled) with a label per row:

    * ``.parquet`` / ``.csv``: one column per channel plus ``label_column``. Channels are ``channel_columns``, or by
      default every numeric column except the label, ``group_column`` and ``exclude_columns`` (e.g. a timestamp).
      With ``group_column`` (e.g. a subject id) the rows of each group are a separate recording; else the file is one.
    * ``.npz``: arrays ``values`` ``[time, channels]`` and ``labels`` ``[time]``; one recording.
    * ``.npy``: one ``[time, channels + 1]`` array whose *last* column is the label; one recording.

    Rows whose label is missing, or not in ``classes`` when that is given, are dropped (and break runs). Missing
    channel values are filled per recording and channel (:func:`fill_missing_values`). Classes are ``classes`` in
    that order, or the sorted distinct labels of all files; :attr:`label_names` lists them, :attr:`label_map` maps
    a raw label to its id. Items: ``{"values": float32 [channels, window_size], "labels", "indices"}``; sampling, epochs
    and reproducibility as in :class:`Pamap2Windows` (recordings play the role of subjects).
    """

    def __init__(
        self,
        files: str | os.PathLike | Sequence[str | os.PathLike],
        window_size: int,
        label_column: str = "label",
        channel_columns: Sequence[str] | None = None,
        exclude_columns: Sequence[str] = (),
        group_column: str | None = None,
        classes: Sequence[Hashable] | None = None,
        examples_per_epoch: int = 10_000,
        seed: int = 0,
        epoch: int = 0,
    ):
        paths = [Path(files)] if isinstance(files, (str, os.PathLike)) else [Path(f) for f in files]
        if not paths:
            raise ValueError("no time-series files given")
        tables: list[tuple[str, np.ndarray, list]] = []  # (name, values [T, C], raw labels [T])
        channels: list[str] | None = None
        for path in paths:
            frame, label_key = _read_table(path, label_column)
            if label_key not in frame.columns:
                raise ValueError(f"{path}: no label column {label_key!r} (columns {list(frame.columns)})")
            if group_column is not None and group_column not in frame.columns:
                raise ValueError(f"{path}: no group column {group_column!r} (columns {list(frame.columns)})")
            if channel_columns is not None and label_key == label_column:
                missing = [c for c in channel_columns if c not in frame.columns]
                if missing:
                    raise ValueError(f"{path}: channel columns {missing} not found (columns {list(frame.columns)})")
                names = list(channel_columns)
            else:
                skip = {label_key, group_column, *exclude_columns}
                names = [c for c in frame.columns if c not in skip and pd.api.types.is_numeric_dtype(frame[c])]
            if not names:
                raise ValueError(f"{path}: no numeric channel columns")
            bad = [c for c in names if not pd.api.types.is_numeric_dtype(frame[c])]
            if bad:
                raise ValueError(f"{path}: channel columns {bad} are not numeric")
            if channels is None:
                channels = [str(n) for n in names]
            elif len(names) != len(channels):
                raise ValueError(f"{path}: {len(names)} channels, but the first file has {len(channels)}")
            groups = (
                [(path.name, frame)]
                if group_column is None
                else [
                    (f"{path.name}[{group_column}={key}]", part) for key, part in frame.groupby(group_column, sort=True)
                ]
            )
            for name, part in groups:
                values = part[names].to_numpy(dtype=np.float32, copy=True)
                tables.append((name, values, [_plain(v) for v in part[label_key].tolist()]))

        def present(value) -> bool:
            return value is not None and not (isinstance(value, float) and np.isnan(value))

        if classes is None:
            distinct = {v for _, _, labels in tables for v in labels if present(v)}
            try:
                label_names = sorted(distinct)
            except TypeError as error:
                raise ValueError(f"labels of mixed types cannot be sorted: {sorted(map(repr, distinct))}") from error
        else:
            label_names = [_plain(c) for c in classes]
            if len(set(label_names)) != len(label_names):
                raise ValueError(f"`classes` has duplicates: {label_names}")
        self.label_map = {label: i for i, label in enumerate(label_names)}
        self.channel_names = channels
        recordings = []
        for name, values, labels in tables:
            ids = np.array([self.label_map.get(v, -1) if present(v) else -1 for v in labels], dtype=np.int64)
            fill_missing_values(values, name)
            recording = _make_recording(name, values, ids, int(window_size))
            if recording is None:
                logger.warning("%s has no run of one class of %s samples; it is left out", name, window_size)
            else:
                recordings.append(recording)
        super().__init__(recordings, label_names, window_size, examples_per_epoch, seed, epoch)


# ==================================================================================================== download
def _safe_extract(archive: zipfile.ZipFile, target: Path) -> None:
    root = target.resolve()
    for member in archive.namelist():
        destination = (target / member).resolve()
        if root != destination and root not in destination.parents:
            raise ValueError(f"refusing to extract {member!r} outside {target}")
    archive.extractall(target)


def download_pamap2(cache_dir: str | os.PathLike, url: str = PAMAP2_URL, force: bool = False) -> Path:
    """Download and unpack Pamap2 into ``cache_dir`` (only when called; nothing else here touches the network).

    Returns ``cache_dir``, which then holds ``PAMAP2_Dataset/Protocol/`` (pass it as ``data_dir``). Does nothing if
    that folder is already there (unless ``force``). The UCI zip (about 650 MB) holds a nested
    ``PAMAP2_Dataset.zip``, which is unpacked too; the downloaded zips are deleted afterwards.
    """
    target = Path(cache_dir)
    protocol = target / "PAMAP2_Dataset" / "Protocol"
    if protocol.is_dir() and not force:
        return target
    target.mkdir(parents=True, exist_ok=True)
    partial, archive_path = target / "pamap2.zip.part", target / "pamap2.zip"
    logger.warning("downloading Pamap2 from %s into %s", url, target)
    with urllib.request.urlopen(url) as response, open(partial, "wb") as handle:  # noqa: S310 - the URL is the user's
        shutil.copyfileobj(response, handle, length=1 << 20)
    partial.replace(archive_path)
    with zipfile.ZipFile(archive_path) as archive:
        _safe_extract(archive, target)
    archive_path.unlink()
    nested = next(iter(sorted(target.rglob("PAMAP2_Dataset.zip"))), None)
    if nested is not None and not protocol.is_dir():
        with zipfile.ZipFile(nested) as archive:
            _safe_extract(archive, target)
        nested.unlink()
    if not protocol.is_dir():
        raise FileNotFoundError(f"the archive from {url} did not contain PAMAP2_Dataset/Protocol/ (looked in {target})")
    return target


# ==================================================================================================== whole series
def read_ts_file(path: str | os.PathLike) -> tuple[np.ndarray, list[str], list[str]]:
    """Read a classification problem in sktime's ``.ts`` format (the UEA/UCR archive's, as sktime and aeon ship it).

    Supports equal-length series without timestamps (``@timeStamps false``, ``@equalLength true``), any number of
    dimensions, and ``?`` for missing values (filled per series and channel with :func:`fill_missing_values`).
    Returns ``(values float32 [N, C, T], labels [N] (as written), class_names)`` where ``class_names`` are the
    ``@classLabel`` names in the file's order. Raises ValueError naming the file and line of anything malformed.
    """
    path = Path(path)
    header: dict[str, str] = {}
    rows, labels = [], []
    with path.open(encoding="utf-8") as handle:
        in_data = False
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                if line.lower() == "@data":
                    in_data = True
                elif line.startswith("@"):
                    key, _, value = line[1:].partition(" ")
                    header[key.lower()] = value.strip()
                else:
                    raise ValueError(f"{path}:{number}: expected a @header line or @data, got {line[:40]!r}")
                continue
            *dimensions, label = line.split(":")
            if not dimensions:
                raise ValueError(f"{path}:{number}: no ':'-separated dimensions before the class label")
            try:
                series = [[float("nan") if v == "?" else float(v) for v in d.split(",")] for d in dimensions]
            except ValueError as error:
                raise ValueError(f"{path}:{number}: {error}") from error
            if len({len(d) for d in series}) != 1 or (rows and (len(series), len(series[0])) != rows[0].shape):
                shape = rows[0].shape if rows else None
                raise ValueError(
                    f"{path}:{number}: series of unequal length or dimension count (first series: {shape}); "
                    "only equal-length problems are supported"
                )
            rows.append(np.asarray(series, dtype=np.float32))
            labels.append(label.strip())
    if header.get("timestamps", "false").lower() != "false":
        raise ValueError(f"{path}: series with timestamps are not supported")
    class_field = header.get("classlabel", "").split()
    if not class_field or class_field[0].lower() != "true":
        raise ValueError(f"{path}: not a classification problem (no '@classLabel true <names>' header)")
    class_names = class_field[1:]
    if not rows:
        raise ValueError(f"{path}: no series after @data")
    unknown = sorted(set(labels) - set(class_names))
    if unknown:
        raise ValueError(f"{path}: labels {unknown} are not among the @classLabel names {class_names}")
    values = np.stack(rows)
    for i, series in enumerate(values):
        if np.isnan(series).any():
            fill_missing_values(series.T, f"{path} series {i}")
    return values, labels, class_names


class SeriesExamples(torch.utils.data.Dataset):
    """Fixed-length labelled series, one item per series: ``{"values": float32 [C, T], "labels", "indices"}``.

    Args:
        path: a ``.ts`` file (:func:`read_ts_file`).
        label_names: class order (e.g. the training split's :attr:`label_names`, so both splits share one map);
            defaults to the file's ``@classLabel`` order.
        max_examples: keep only the first this many series.
    """

    def __init__(
        self, path: str | os.PathLike, label_names: Sequence[str] | None = None, max_examples: int | None = None
    ):
        if Path(path).suffix.lower() != ".ts":
            raise ValueError(f"{path}: series files must be in the .ts format (sktime/aeon), got {Path(path).suffix!r}")
        values, labels, class_names = read_ts_file(path)
        self.label_names = list(class_names if label_names is None else label_names)
        unknown = sorted(set(labels) - set(self.label_names))
        if unknown:
            raise ValueError(f"{path}: labels {unknown} are not among the label names {self.label_names}")
        self.label_map = {name: i for i, name in enumerate(self.label_names)}
        self.path = Path(path)
        self.values = torch.from_numpy(values[:max_examples])
        self.labels = torch.tensor([self.label_map[label] for label in labels[:max_examples]])

    @property
    def num_channels(self) -> int:
        return int(self.values.shape[1])

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"values": self.values[index], "labels": self.labels[index], "indices": torch.tensor(int(index))}
