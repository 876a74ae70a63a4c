"""Image training sets held on the training device as uint8 and batched there, so the host does no work per step.

For datasets that fit in accelerator memory (CIFAR-10's 50,000 training images are 147 MiB as 3×32×32 uint8), the
images are decoded and resized once, through the same `ImageExamples` and processor as the host pipeline, and every
batch is then a gather and a conversion to float on the device. Handcrafted views (`SimCLRImageViews`) act on the
batch where it is, so the input pipeline never makes the accelerator wait for a data-loader worker.
"""

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset


class DeviceImageDataset:
    """A whole image split on one device: pixels `[N, C, H, W]` uint8 and labels `[N]` int64.

    Example `i` of the split is row `i`, so a batch's `indices` are the examples' indices in the split (the InstDisc
    memory-bank rows), as with `ImageExamples`.

    Args:
        pixels: `[N, C, H, W]` uint8 images.
        labels: `[N]` integer labels (-1 for unlabelled data), on the same device.
    """

    def __init__(self, pixels: torch.Tensor, labels: torch.Tensor):
        if pixels.dtype != torch.uint8 or pixels.ndim != 4:
            raise ValueError(f"pixels must be a uint8 [N, C, H, W] tensor, got {pixels.dtype} {tuple(pixels.shape)}")
        if labels.shape != pixels.shape[:1] or labels.device != pixels.device:
            raise ValueError(
                f"labels must be [N] = [{pixels.shape[0]}] on {pixels.device}, got {tuple(labels.shape)} on {labels.device}"
            )
        self.pixels = pixels
        self.labels = labels.long()

    @classmethod
    def from_examples(
        cls, examples: Dataset, device: torch.device | str, batch_size: int = 256, num_workers: int = 0
    ) -> "DeviceImageDataset":
        """Decode `examples` once and move them to `device`.

        Args:
            examples: items `{"pixel_values": [C, H, W] float in [0, 1], "labels": int, ...}` in index order, e.g.
                an `ImageExamples` split (decoded, converted and resized by its `ViewmakerImageProcessor`).
            device: where the images will live.
            batch_size, num_workers: how the examples are decoded (a `DataLoader` over them).

        Raises:
            ValueError: when the pixels are not whole multiples of 1/255 (a processor that does not work in 8 bits):
                holding them as uint8 would change them.
        """
        pixels, labels = [], []
        for batch in DataLoader(examples, batch_size=batch_size, num_workers=num_workers):
            values = batch["pixel_values"]
            levels = values.mul(255).round_().to(torch.uint8)
            # The processor resizes 8-bit images and divides by 255, so this is exact; the check keeps it so.
            if not torch.equal(levels.float().div_(255), values):
                raise ValueError(
                    "the examples' pixel values are not 8-bit levels (k / 255): they cannot be held as uint8"
                )
            pixels.append(levels.to(device))
            labels.append(batch["labels"].to(device))
        if not pixels:
            raise ValueError("no examples to hold on the device")
        return cls(torch.cat(pixels), torch.cat(labels))

    def __len__(self) -> int:
        return self.pixels.shape[0]

    @property
    def device(self) -> torch.device:
        return self.pixels.device

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """The examples `indices` (`[B]` int64 on the device) as a training batch, made on the device.

        Returns:
            `pixel_values` `[B, C, H, W]` float32 in [0, 1] (the same values as the host pipeline's), `labels` `[B]`
            and `indices` `[B]`.
        """
        return {
            "pixel_values": self.pixels.index_select(0, indices).float().div_(255),
            "labels": self.labels.index_select(0, indices),
            "indices": indices,
        }


class DeviceImageLoader:
    """Shuffled training batches of a `DeviceImageDataset`, drawn and made on its device.

    Each epoch is a permutation of the examples drawn from `seed + epoch` by a generator on the device (the same on
    every process, and independent of the global RNG). Optimizer step `s` reads the `num_replicas * batch_size`
    examples at position `s * num_replicas * batch_size` of it, and process `rank` takes the `rank`-th `batch_size` of
    them: processes see disjoint examples, together the ones a single process would see with the global batch. The
    last, incomplete global batch is dropped (as `drop_last=True`).

    Use it like a data loader with a sampler: `set_epoch(epoch)`, then iterate; `skip_first_batches(n)` resumes in the
    middle of the current epoch.

    Args:
        dataset: the images on the device.
        batch_size: examples per process per batch.
        seed: seeds the epochs' permutations.
        num_replicas, rank: the number of processes and this one's index (`accelerator.num_processes`,
            `accelerator.process_index`).
    """

    def __init__(
        self, dataset: DeviceImageDataset, batch_size: int, seed: int = 0, num_replicas: int = 1, rank: int = 0
    ):
        if batch_size < 1 or not 0 <= rank < num_replicas:
            raise ValueError(
                f"need batch_size >= 1 and 0 <= rank < num_replicas, got {batch_size}, {rank}, {num_replicas}"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        """Batches per epoch on each process."""
        return len(self.dataset) // (self.batch_size * self.num_replicas)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self.skip_first_batches(0)

    def skip_first_batches(self, num_batches: int) -> Iterator[dict[str, torch.Tensor]]:
        """The current epoch's batches from batch `num_batches` on: a resumed run sees what an uninterrupted one
        would have."""
        generator = torch.Generator(device=self.dataset.device).manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.dataset), generator=generator, device=self.dataset.device)
        global_batch = self.batch_size * self.num_replicas
        for step in range(num_batches, len(self)):
            start = step * global_batch + self.rank * self.batch_size
            yield self.dataset.batch(order[start : start + self.batch_size])


__all__ = ["DeviceImageDataset", "DeviceImageLoader"]
