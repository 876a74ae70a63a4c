"""Where the data come from, for images and speech alike: one training and (when there is one) one validation split.

The scripts take their data the way transformers' example scripts do, from exactly one source:

* ``--dataset_name``: a Hub id, or a local folder of data files (a dataset repository);
* ``--train_dir`` (+ ``--validation_dir``): a local folder with one sub-folder per class (read by the domain's own
  folder loader: the ``imagefolder`` builder for images, `load_audio_folder` for speech);
* ``--train_file`` (+ ``--validation_file``): a parquet, csv, json or arrow file (:data:`FILE_BUILDERS`).

Without ``--validation_split`` the validation split is "validation" when the dataset has one, else "test", else none
(:func:`validation_split_candidates`). Media columns are left undecoded (:func:`undecoded`): the examples classes
decode each value themselves, so that an unreadable file is an error naming it, and `datasets` never reaches for
torchcodec (see `hf_viewmaker.data.speech`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TypeVar

from datasets import (
    Audio,
    Dataset,
    DatasetDict,
    Image,
    IterableDataset,
    IterableDatasetDict,
    concatenate_datasets,
    load_dataset,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = [
    "FILE_BUILDERS",
    "VALIDATION_SPLITS",
    "check_single_source",
    "first_readable",
    "hub_split_names",
    "load_data_files",
    "load_hub_split",
    "load_hub_splits",
    "undecoded",
    "validation_split_candidates",
]

#: File extension -> the packaged `datasets` builder that reads it (``--train_file`` / ``--validation_file``).
FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json", ".arrow": "arrow"}

#: The splits tried, in order, when no validation split is named.
VALIDATION_SPLITS = ("validation", "test")


def check_single_source(dataset_name: str | None, train_dir: str | None, train_file: str | None) -> None:
    """Raise ValueError unless exactly one of the three data sources is given."""
    if sum(x is not None for x in (dataset_name, train_dir, train_file)) != 1:
        raise ValueError("give exactly one data source: --dataset_name, --train_dir or --train_file")


def validation_split_candidates(available: Collection[str] | None) -> list[str]:
    """The default validation splits to try, in order: those of :data:`VALIDATION_SPLITS` among ``available`` (all
    of them when the available splits are unknown, ``None``)."""
    return [s for s in VALIDATION_SPLITS if available is None or s in available]


def load_data_files(
    train_file: str,
    validation_file: str | None = None,
    cache_dir: str | None = None,
    streaming: bool = False,
) -> DatasetDict | IterableDatasetDict:
    """A training file (+ a validation file) in parquet, csv, json or arrow, read with the builder of its extension
    (:data:`FILE_BUILDERS`), as splits "train" (+ "validation")."""
    suffix = Path(train_file).suffix
    if suffix not in FILE_BUILDERS:
        raise ValueError(f"--train_file {train_file}: unsupported extension {suffix!r} ({sorted(FILE_BUILDERS)})")
    data_files = {"train": train_file} | ({"validation": validation_file} if validation_file is not None else {})
    return load_dataset(FILE_BUILDERS[suffix], data_files=data_files, cache_dir=cache_dir, streaming=streaming)


def load_hub_split(
    name: str,
    config: str | None,
    split: str,
    cache_dir: str | None = None,
    streaming: bool = False,
    data_dir: str | None = None,
) -> Dataset | IterableDataset:
    """One split of a Hub / local dataset (or of a packaged builder reading `data_dir`); ``"a+b"`` concatenates
    splits a and b."""
    parts = [s.strip() for s in split.split("+")]
    loaded = []
    for part in parts:
        try:
            loaded.append(
                load_dataset(name, config, data_dir=data_dir, split=part, cache_dir=cache_dir, streaming=streaming)
            )
        except ValueError as error:
            if "split" in str(error).lower():
                raise ValueError(f"dataset {name!r} (config {config!r}) has no split {part!r}: {error}") from error
            raise
    return loaded[0] if len(loaded) == 1 else concatenate_datasets(loaded)


def hub_split_names(name: str, config: str | None, cache_dir: str | None = None) -> list[str] | None:
    """The split names of a Hub / local dataset, or ``None`` when they cannot be had without loading it."""
    try:
        from datasets import get_dataset_split_names

        return list(get_dataset_split_names(name, config, cache_dir=cache_dir))
    except Exception:
        return None


def load_hub_splits(
    name: str,
    config: str | None,
    train_split: str,
    validation_split: str | None = None,
    cache_dir: str | None = None,
    streaming: bool = False,
    data_dir: str | None = None,
) -> dict[str, Dataset | IterableDataset]:
    """``{"train": ..., "validation": ...}`` of a Hub / local dataset, loaded split by split (:func:`load_hub_split`:
    ``"a+b"`` concatenates). Without ``validation_split``, the first of :func:`validation_split_candidates` that
    loads; no "validation" key when none does."""
    train = load_hub_split(name, config, train_split, cache_dir, streaming, data_dir)
    if validation_split is None:
        validation = None
        available = None if data_dir is not None else hub_split_names(name, config, cache_dir)
        for candidate in validation_split_candidates(available):
            try:
                validation = load_hub_split(name, config, candidate, cache_dir, streaming, data_dir)
                break
            except ValueError:
                continue
    else:
        validation = load_hub_split(name, config, validation_split, cache_dir, streaming, data_dir)
    return {"train": train} | ({"validation": validation} if validation is not None else {})


def first_readable(
    index: int,
    size: int,
    read: Callable[[int], T],
    skip: bool,
    bad_indices: set[int],
    max_tries: int = 32,
    never_skip: tuple[type[Exception], ...] = (),
) -> tuple[int, T, int]:
    """`(row, read(row), skipped)`: `read(index)`, or with `skip`, when it raises ValueError (an unreadable file), the
    next readable row (index + 1, + 2, ... wrapping around), with a warning once per row; rows found unreadable are
    remembered in `bad_indices` and not read again. `never_skip` errors are raised whatever `skip` says. Without
    `skip` the first error is raised; after `max_tries` unreadable rows in a row, too."""
    skipped, row = 0, index
    while True:
        if row not in bad_indices:
            try:
                return row, read(row), skipped
            except never_skip:
                raise
            except ValueError as error:
                if not skip:
                    raise
                bad_indices.add(row)
                logger.warning("skipping unreadable example %d (using the next readable one): %s", row, error)
        skipped += 1
        if skipped >= min(max_tries, size):
            raise ValueError(f"{skipped} consecutive unreadable examples from row {index} on (the last: row {row})")
        row = (row + 1) % size


def undecoded(dataset, column: str):
    """``dataset`` with an `Audio` or `Image` ``column`` cast to ``decode=False`` (the stored ``{"bytes", "path"}``);
    any other column, or one already undecoded, is left as it is."""
    features = dataset.features
    feature = features.get(column) if features is not None else None
    if isinstance(feature, (Audio, Image)) and feature.decode:
        return dataset.cast_column(column, type(feature)(decode=False))
    return dataset
