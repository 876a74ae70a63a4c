"""Training data read as it is iterated (``--streaming``), for sets too large to download first (960 h of
LibriSpeech): a `datasets.IterableDataset` of raw rows, shuffled, split between processes and data-loader workers,
decoded example by example, and resumable exactly.

How a stream is shuffled, and why that way
------------------------------------------
Each epoch of a process's stream is:

1. the source's shards (files) in an order shuffled with the run's seed and the epoch (`IterableDataset.shuffle` with
   a buffer of one example and `set_epoch`);
2. this process's part of them (`datasets.distributed.split_dataset_by_node`; data-loader workers then split a
   process's shards again, inside `datasets`);
3. cut into consecutive windows of ``shuffle_buffer_size`` rows, each read whole, permuted by a generator seeded
   with (seed, epoch, window, process, worker), and yielded example by example, decoded only when yielded.

A checkpoint holds, per process (and per worker), the epoch, the window, how many of its examples were yielded, and
the source's own position at the window's start (`IterableDataset.state_dict`). A resumed run reloads that
position, reads the window again (the refill: at most ``shuffle_buffer_size`` rows read twice, none decoded twice)
and yields the rest of its permutation: exactly the examples, in the order, an uninterrupted run would have yielded.
`IterableDataset.shuffle`'s own rolling buffer cannot be resumed that way: its contents are not in its state, so
`datasets` refills it from the source's position and the examples that were in it at the checkpoint are lost for
that epoch (and a few may repeat). A window is a coarser shuffle than a rolling buffer of the same size (an example
never leaves its window), which the shuffled shard order offsets.

Each process's stream starts its next epoch when it ends, so a streamed run is counted in steps (``--max_steps``),
never in epochs, and processes with unequal shares never wait for each other at an epoch's end.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from datasets import Dataset, IterableDataset
from datasets.distributed import split_dataset_by_node
from datasets.table import InMemoryTable

logger = logging.getLogger(__name__)

__all__ = ["StreamedExamples", "leading_rows"]


@contextlib.contextmanager
def _quiet_datasets():
    library_logger = logging.getLogger("datasets")
    level = library_logger.level
    library_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        library_logger.setLevel(level)


def leading_rows(stream: IterableDataset, count: int | None = None) -> Dataset:
    """The first `count` rows of `stream` (all of them without `count`), unshuffled, as an in-memory `Dataset` with
    the stream's features: fixed examples (the kNN monitor's bank and queries) read once from the stream."""
    rows = list(stream if count is None else stream.take(count))
    if not rows:
        raise ValueError("the stream has no examples")
    if stream.features is None:
        return Dataset.from_list(rows)
    # Arrow converts the rows to the features' storage types itself: `Dataset.from_list` would encode each media
    # value through its feature, and encoding audio needs torchcodec even for bytes already encoded.
    return Dataset(InMemoryTable(pa.Table.from_pylist(rows, schema=stream.features.arrow_schema)))


def _start_of_epoch(epoch: int) -> dict[str, Any]:
    """A stream's position before the first row of `epoch` (no window read, no source state yet)."""
    return {"epoch": epoch, "window": 0, "yielded": 0, "source": None}


class StreamedExamples(torch.utils.data.IterableDataset):
    """An endless, shuffled stream of training examples for one process, resumable exactly (see the module's
    docstring for how).

    Items are ``decode(row)`` plus ``"labels"`` and ``"indices"``, both -1 (pretraining reads neither; a stream has
    no row numbers for a memory bank) and ``"num_skipped"``, the unreadable rows passed over just before it.

    Args:
        source: the training split as a `datasets.IterableDataset` of raw rows (media left undecoded).
        decode: a row -> the example's inputs (e.g. ``{"pixel_values": ...}``); raises ValueError for an unreadable
            row.
        shuffle_buffer_size: rows per shuffled window; 0 or 1 keep the source's order (shards unshuffled too).
        seed: seeds the shard order and the windows' permutations.
        skip_bad_examples: pass over a row `decode` cannot read, with a warning, counting it in the next item's
            ``num_skipped``; otherwise the error is raised.
        never_skip: ValueError subclasses raised whatever `skip_bad_examples` says (mistakes of the configuration,
            such as a clip at another sampling rate, not unreadable rows).
        process_index, num_processes: this process's part of the stream (see `for_process`).
    """

    def __init__(
        self,
        source: IterableDataset,
        decode: Callable[[dict[str, Any]], dict[str, Any]],
        shuffle_buffer_size: int = 1000,
        seed: int = 0,
        skip_bad_examples: bool = False,
        process_index: int = 0,
        num_processes: int = 1,
        never_skip: tuple[type[ValueError], ...] = (),
    ):
        if not isinstance(source, IterableDataset):
            raise TypeError(f"StreamedExamples reads a datasets.IterableDataset, got {type(source).__name__}")
        self.source = source
        self.decode = decode
        self.shuffle_buffer_size = max(1, int(shuffle_buffer_size))
        self.seed = int(seed)
        self.skip_bad_examples = bool(skip_bad_examples)
        self.never_skip = tuple(never_skip)
        self.process_index = int(process_index)
        self.num_processes = int(num_processes)
        self._position = _start_of_epoch(0)

    def for_process(self, process_index: int, num_processes: int) -> StreamedExamples:
        """This stream's part for process `process_index` of `num_processes`, from its start."""
        part = copy.copy(self)
        part.process_index, part.num_processes = int(process_index), int(num_processes)
        part._position = _start_of_epoch(0)
        return part

    @property
    def shuffles(self) -> bool:
        return self.shuffle_buffer_size > 1

    def state_dict(self) -> dict[str, Any]:
        """Where the stream stands: JSON-serialisable, for `load_state_dict` in a resumed run."""
        return dict(self._position)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = set(_start_of_epoch(0)) - set(state)
        if missing:
            raise ValueError(f"not a StreamedExamples state: it lacks {sorted(missing)}")
        self._position = dict(state)

    def _epoch_source(self, epoch: int) -> IterableDataset:
        source = self.source
        if self.shuffles:
            # A buffer of one example shuffles only the shards' order; its state, unlike a larger buffer's, is exact.
            source = source.shuffle(seed=self.seed, buffer_size=1, max_buffer_input_shards=1)
            source.set_epoch(epoch)
        # A new object for every epoch: a loaded state stays with the object it was loaded into.
        return split_dataset_by_node(source, rank=self.process_index, world_size=self.num_processes)

    def _window_order(self, epoch: int, window: int, size: int) -> np.ndarray:
        if not self.shuffles:
            return np.arange(size)
        worker = torch.utils.data.get_worker_info()
        key = (self.seed, epoch, window, self.process_index, worker.id if worker is not None else 0)
        return np.random.default_rng(key).permutation(size)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        skipped = 0
        while True:
            epoch = self._position["epoch"]
            from_epoch_start = self._position["source"] is None
            source = self._epoch_source(epoch)
            if not from_epoch_start:
                with _quiet_datasets():  # it warns of a shuffle buffer's lost contents: ours holds one example
                    source.load_state_dict(self._position["source"])
            rows = iter(source)
            yielded_this_epoch = False
            for window in itertools.count(self._position["window"]):
                start = source.state_dict()
                buffer = list(itertools.islice(rows, self.shuffle_buffer_size))
                if not buffer:
                    break
                done = self._position["yielded"] if window == self._position["window"] else 0
                self._position.update(window=window, source=start, yielded=done)
                for position in self._window_order(epoch, window, len(buffer))[done:]:
                    self._position["yielded"] += 1
                    try:
                        inputs = self.decode(buffer[position])
                    except ValueError as error:
                        if not self.skip_bad_examples or isinstance(error, self.never_skip):
                            raise
                        logger.warning("skipping an unreadable streamed example: %s", error)
                        skipped += 1
                        continue
                    yielded_this_epoch = True
                    yield inputs | {
                        "labels": torch.tensor(-1),
                        "indices": torch.tensor(-1),
                        "num_skipped": torch.tensor(skipped),
                    }
                    skipped = 0
            if from_epoch_start and not yielded_this_epoch:
                raise ValueError(
                    f"process {self.process_index} of {self.num_processes} got no readable example from the stream: "
                    "it has fewer examples (or shards) than processes and workers, or none is readable"
                )
            self._position = _start_of_epoch(epoch + 1)
