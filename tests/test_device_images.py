"""Image training sets held on the device as uint8: the same pixels as the host pipeline, seeded epoch orders,
disjoint shards per process, and resumption in the middle of an epoch."""

import pytest
import torch
from torch.utils.data import default_collate

from hf_viewmaker.data import ImageExamples, load_fashion_mnist_sample
from hf_viewmaker.data.device_images import DeviceImageDataset, DeviceImageLoader
from hf_viewmaker.processing import ViewmakerImageProcessor


@pytest.fixture(scope="module")
def examples() -> ImageExamples:
    # 28 x 28 Fashion-MNIST images resized to 16 x 16, as the tests' tiny pretraining runs use them.
    split = load_fashion_mnist_sample()["train"].select(range(40))
    return ImageExamples(split, ViewmakerImageProcessor(num_channels=1, size={"height": 16, "width": 16}))


def _images(count: int = 10) -> DeviceImageDataset:
    pixels = torch.arange(count, dtype=torch.uint8).view(count, 1, 1, 1).expand(count, 3, 2, 2).contiguous()
    return DeviceImageDataset(pixels, torch.arange(count) % 3)


def _epoch(loader: DeviceImageLoader, epoch: int) -> list[list[int]]:
    loader.set_epoch(epoch)
    return [batch["indices"].tolist() for batch in loader]


def test_batches_hold_exactly_the_host_pipelines_pixels(examples):
    images = DeviceImageDataset.from_examples(examples, "cpu", batch_size=16)
    assert images.pixels.dtype == torch.uint8 and images.pixels.shape == (40, 1, 16, 16)
    indices = torch.tensor([3, 17, 0, 39])
    batch = images.batch(indices)
    expected = default_collate([examples[i] for i in indices.tolist()])
    assert batch["pixel_values"].dtype == torch.float32
    for key in ("pixel_values", "labels", "indices"):
        assert torch.equal(batch[key], expected[key]), key


def test_pixels_that_are_not_8_bit_levels_are_refused():
    items = [{"pixel_values": torch.full((1, 2, 2), 0.5), "labels": torch.tensor(0)}]
    with pytest.raises(ValueError, match="8-bit"):
        DeviceImageDataset.from_examples(items, "cpu")


def test_epochs_are_seeded_permutations_that_drop_the_last_incomplete_batch():
    loader = DeviceImageLoader(_images(10), batch_size=3, seed=5)
    first = _epoch(loader, 0)
    assert len(first) == len(loader) == 3 and all(len(batch) == 3 for batch in first)
    seen = [i for batch in first for i in batch]
    assert len(set(seen)) == 9 and set(seen) <= set(range(10))
    assert _epoch(loader, 0) == first, "an epoch's order depends on the seed and the epoch only"
    assert _epoch(loader, 1) != first
    assert _epoch(DeviceImageLoader(_images(10), batch_size=3, seed=6), 0) != first
    batch = next(iter(loader))
    assert torch.equal(batch["pixel_values"][:, 0, 0, 0] * 255, batch["indices"].float())
    assert torch.equal(batch["labels"], batch["indices"] % 3)


def test_processes_see_disjoint_examples_and_together_the_single_process_global_batch():
    single = _epoch(DeviceImageLoader(_images(25), batch_size=6, seed=1), 2)
    shards = [_epoch(DeviceImageLoader(_images(25), batch_size=3, seed=1, num_replicas=2, rank=r), 2) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == len(single) == 4
    for step, global_batch in enumerate(single):
        assert not set(shards[0][step]) & set(shards[1][step])
        assert shards[0][step] + shards[1][step] == global_batch


def test_skipping_the_first_batches_resumes_the_epoch_where_it_stopped():
    loader = DeviceImageLoader(_images(20), batch_size=4, seed=3)
    whole = _epoch(loader, 7)
    loader.set_epoch(7)
    assert [batch["indices"].tolist() for batch in loader.skip_first_batches(2)] == whole[2:]
