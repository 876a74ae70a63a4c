"""Pamap2 (docs/method.md §4.4): reading its subjects, downloading it, and random class-balanced windows of it.

Where the data comes from
-------------------------
Pamap2 ("PAMAP2 Physical Activity Monitoring", UCI Machine Learning Repository, dataset 231, CC BY 4.0) is read from
its official archive layout, ``<data_dir>/PAMAP2_Dataset/Protocol/subject101.dat`` ... ``subject109.dat``: one
whitespace-separated text file per subject, 54 columns per row at 100 Hz: timestamp (s), activity id, heart rate
(bpm), then 17 columns for each of three IMUs (hand, chest, ankle): temperature, 3-D acceleration (±16 g), 3-D
acceleration (±6 g), 3-D gyroscope, 3-D magnetometer, 4 orientation values. Missing values are ``NaN`` (the heart
rate is sampled at about 9 Hz, so most of its rows are NaN; IMUs drop out now and then). :func:`download_pamap2`
fetches and unpacks the UCI zip, only when called.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import torch

from .time_series import fill_missing_values

logger = logging.getLogger(__name__)

__all__ = [
    "PAMAP2_ACTIVITIES",
    "PAMAP2_CHANNEL_NAMES",
    "PAMAP2_SPLITS",
    "PAMAP2_URL",
    "Pamap2Windows",
    "download_pamap2",
    "pamap2_subject_path",
    "read_pamap2_subject",
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
    except Exception as error:
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


class Pamap2Windows(torch.utils.data.Dataset):
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
        if not recordings:
            raise ValueError(f"no recording has a single run of one class of at least {window_size} samples")
        for name, value in (("window_size", window_size), ("examples_per_epoch", examples_per_epoch)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"`seed` must be an integer >= 0, got {seed!r}")
        self.subjects = [int(s) for s in subjects]
        self.split = split
        self.recordings = recordings
        self.label_names = list(PAMAP2_ACTIVITIES.values())
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
    with urllib.request.urlopen(url) as response, open(partial, "wb") as handle:
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
