"""Generic labelled time series: whole fixed-length series from sktime ``.ts`` files, and the filling of missing
values that the Pamap2 reader (`hf_viewmaker.data.pamap2`) shares.

Datasets of fixed-length labelled series (e.g. the UEA archive's BasicMotions, in the sktime ``.ts`` format that
sktime and aeon ship) are read whole, one item per series, with :func:`read_ts_file` and :class:`SeriesExamples`.
Featurize them on the training device with `SensorSpectrogramProcessor` (``hf_viewmaker.processing.sensor_processing``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = ["SeriesExamples", "fill_missing_values", "read_ts_file"]


# ==================================================================================================== missing values
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
