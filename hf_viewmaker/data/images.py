"""Image datasets through `datasets`: the Hub (e.g. `uoft-cs/cifar10`), local folders (`imagefolder`) or files
(:func:`load_image_splits`, sources as in `hf_viewmaker.data.sources`), and their splits as training examples
(:class:`ImageExamples`)."""

import io
import os

import torch
from datasets import Dataset, DatasetDict, IterableDatasetDict, load_dataset
from PIL import Image as PILImage

from ..processing.image_processing_viewmaker import ViewmakerImageProcessor
from .sources import check_single_source, first_readable, load_data_files, undecoded, validation_split_candidates


def load_image_splits(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_dir: str | None = None,
    validation_dir: str | None = None,
    train_file: str | None = None,
    validation_file: str | None = None,
    train_split: str = "train",
    validation_split: str | None = None,
    cache_dir: str | None = None,
    data_dir: str | None = None,
    streaming: bool = False,
) -> DatasetDict | IterableDatasetDict:
    """Load a training and a validation split, the way transformers' example scripts take data from the command line.

    Exactly one source: `dataset_name` (a Hub id such as `uoft-cs/cifar10`, or a packaged builder such as
    `imagefolder` / `parquet` together with `dataset_config_name`), `train_dir` (+ `validation_dir`) folders for the
    `imagefolder` builder (class sub-folders become labels), or `train_file` (+ `validation_file`) in parquet, csv,
    json or arrow. `validation_split` defaults to "validation" when the dataset has one, else "test". `data_dir` is
    the folder a packaged builder reads (`dataset_name="imagefolder", data_dir=...`).

    Returns a `DatasetDict` with "train" and, when the source has one, "validation"; with `streaming`, an
    `IterableDatasetDict` read as it is iterated (`hf_viewmaker.data.streaming`).
    """
    check_single_source(dataset_name, train_dir, train_file)
    if dataset_name is not None:
        raw = load_dataset(
            dataset_name, dataset_config_name, data_dir=data_dir, cache_dir=cache_dir, streaming=streaming
        )
    elif train_dir is not None:
        data_files = {"train": os.path.join(train_dir, "**")}
        if validation_dir is not None:
            data_files["validation"] = os.path.join(validation_dir, "**")
        raw = load_dataset("imagefolder", data_files=data_files, cache_dir=cache_dir, streaming=streaming)
        train_split = "train"
    else:
        raw = load_data_files(train_file, validation_file, cache_dir, streaming)
        train_split = "train"
    if train_split not in raw:
        raise ValueError(f"the dataset has no split {train_split!r}; its splits are {list(raw)}")
    if validation_split is None:
        validation_split = next(iter(validation_split_candidates(raw)), None)
    elif validation_split not in raw:
        raise ValueError(f"the dataset has no split {validation_split!r}; its splits are {list(raw)}")
    splits = {"train": raw[train_split]}
    if validation_split is not None:
        splits["validation"] = raw[validation_split]
    return DatasetDict(splits)


def read_image(value, where: str, image_column: str = "image", skip_bad_examples: bool = False) -> PILImage.Image:
    """The image of one stored value (a path, or the `Image(decode=False)` form ``{"bytes", "path"}``), loaded; an
    unreadable one raises ValueError naming its file (else `where`, e.g. its row) and `image_column`, and saying how
    to pass over such images unless `skip_bad_examples` already does."""
    try:
        if isinstance(value, dict):
            where = value.get("path") or where
            source = io.BytesIO(value["bytes"]) if value.get("bytes") is not None else value["path"]
        else:
            source = where = value
        image = PILImage.open(source)
        image.load()
        return image
    except Exception as error:
        raise ValueError(
            f"could not read the image at {where} (column {image_column!r}): {error}"
            + ("" if skip_bad_examples else " (--skip_bad_examples true passes over unreadable images)")
        ) from error


class ImageExamples(torch.utils.data.Dataset):
    """A `datasets` image split as training examples: `{"pixel_values", "labels", "indices", "num_skipped"}` per
    item.

    Images are decoded here rather than by `datasets`, so that an unreadable image raises an error naming its file
    (or its row) instead of a bare PIL error deep inside a data-loader worker.

    Args:
        dataset: a split with an image column (the `Image` feature, or paths / bytes).
        image_processor: turns a PIL image into `[C, H, W]` pixels in [0, 1] (`do_normalize=False`).
        image_column: the image column, e.g. "img" for `uoft-cs/cifar10`, "image" for `imagefolder`.
        label_column: the label column, or `None` for unlabelled data (`labels` is then -1).
        skip_bad_examples: an unreadable image is an error naming its file (False, the default), or (True) replaced
            by the next readable one with a warning, counted in the item's `num_skipped` (as `SpeechExamples` does).
    """

    def __init__(
        self,
        dataset: Dataset,
        image_processor: ViewmakerImageProcessor,
        image_column: str = "image",
        label_column: str | None = "label",
        skip_bad_examples: bool = False,
    ):
        for name, column in (("image_column_name", image_column), ("label_column_name", label_column)):
            if column is not None and column not in dataset.column_names:
                raise ValueError(f"--{name} {column!r} is not a column of the dataset ({dataset.column_names})")
        self.dataset = undecoded(dataset, image_column)
        self.image_processor = image_processor
        self.image_column = image_column
        self.label_column = label_column
        self.skip_bad_examples = bool(skip_bad_examples)
        self.bad_indices: set[int] = set()

    def __len__(self) -> int:
        return len(self.dataset)

    def _read(self, index: int) -> tuple[PILImage.Image, dict]:
        row = self.dataset[index]
        return read_image(row[self.image_column], f"row {index}", self.image_column, self.skip_bad_examples), row

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} examples")
        index, (image, row), skipped = first_readable(
            int(index) % len(self), len(self), self._read, self.skip_bad_examples, self.bad_indices
        )
        pixel_values = self.image_processor(image, return_tensors="pt")["pixel_values"][0]
        label = row[self.label_column] if self.label_column is not None else -1
        return {
            "pixel_values": pixel_values,
            "labels": torch.tensor(label),
            "indices": torch.tensor(index),
            "num_skipped": torch.tensor(skipped),
        }


__all__ = ["ImageExamples", "load_image_splits", "read_image"]
