"""Image data: loading through `datasets` from real on-disk layouts, decoding, processing, pictures."""

import io

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image
from PIL import Image as PILImage

from hf_viewmaker.data import ImageExamples, load_fashion_mnist_sample, load_image_splits
from hf_viewmaker.demo import main as demo_main
from hf_viewmaker.processing import ViewmakerImageProcessor
from hf_viewmaker.visualization import make_view_grid

from helpers import write_image_folder


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _cifar_like_parquet(path, n, seed):
    """A split in the schema of `uoft-cs/cifar10` on the Hub: `img` (Image) and `label` (ClassLabel)."""
    rng = np.random.default_rng(seed)
    features = Features({"img": Image(), "label": ClassLabel(names=["airplane", "automobile", "bird"])})
    images = [{"bytes": _png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)), "path": None} for _ in range(n)]
    Dataset.from_dict({"img": images, "label": [i % 3 for i in range(n)]}, features=features).to_parquet(path)


def test_parquet_files_in_the_hub_schema(tmp_path):
    _cifar_like_parquet(tmp_path / "train.parquet", 6, 0)
    _cifar_like_parquet(tmp_path / "test.parquet", 3, 1)
    splits = load_image_splits(
        train_file=str(tmp_path / "train.parquet"), validation_file=str(tmp_path / "test.parquet")
    )
    assert {k: len(v) for k, v in splits.items()} == {"train": 6, "validation": 3}
    examples = ImageExamples(splits["train"], ViewmakerImageProcessor(), image_column="img", label_column="label")
    item = examples[4]
    assert item["pixel_values"].shape == (3, 32, 32)
    assert 0.0 <= item["pixel_values"].min() and item["pixel_values"].max() <= 1.0
    assert item["labels"].item() == 1 and item["indices"].item() == 4


def test_packaged_builder_by_name_with_splits(tmp_path):
    _cifar_like_parquet(tmp_path / "train.parquet", 4, 0)
    _cifar_like_parquet(tmp_path / "test.parquet", 2, 1)
    splits = load_image_splits(dataset_name=str(tmp_path), validation_split="test")
    assert {k: len(v) for k, v in splits.items()} == {"train": 4, "validation": 2}
    with pytest.raises(ValueError, match="no split 'dev'"):
        load_image_splits(dataset_name=str(tmp_path), validation_split="dev")


def test_imagefolder_with_class_folders_and_a_broken_file(tmp_path):
    for label in ("cat", "dog"):
        (tmp_path / "train" / label).mkdir(parents=True)
        for i in range(2):
            PILImage.fromarray(np.full((20, 24), 40 * i, dtype=np.uint8)).save(tmp_path / "train" / label / f"{i}.png")
    splits = load_image_splits(train_dir=str(tmp_path / "train"))
    assert set(splits) == {"train"}
    examples = ImageExamples(splits["train"], ViewmakerImageProcessor(num_channels=1, size={"height": 16, "width": 16}))
    assert examples[0]["pixel_values"].shape == (1, 16, 16)
    assert sorted(int(examples[i]["labels"]) for i in range(4)) == [0, 0, 1, 1]

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    dataset = Dataset.from_dict({"image": [str(broken)], "label": [0]})
    with pytest.raises(ValueError, match="broken.png"):
        ImageExamples(dataset, ViewmakerImageProcessor())[0]


def test_missing_columns_and_sources_are_named(tmp_path):
    _cifar_like_parquet(tmp_path / "train.parquet", 2, 0)
    splits = load_image_splits(train_file=str(tmp_path / "train.parquet"))
    with pytest.raises(ValueError, match="image_column_name 'image'"):
        ImageExamples(splits["train"], ViewmakerImageProcessor(), image_column="image")
    with pytest.raises(ValueError, match="exactly one data source"):
        load_image_splits()
    with pytest.raises(ValueError, match="unsupported extension"):
        load_image_splits(train_file=str(tmp_path / "train.txt"))


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "I;16", "CMYK"])
def test_any_image_mode_becomes_the_model_layout(mode):
    image = PILImage.fromarray(np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)).convert(mode)
    for channels in (1, 3):
        out = ViewmakerImageProcessor(num_channels=channels)(image, return_tensors="pt")["pixel_values"]
        assert out.shape == (1, channels, 32, 32)


def test_processor_round_trip_and_tensor_normalisation(tmp_path):
    processor = ViewmakerImageProcessor(
        num_channels=1, image_mean=[0.3], image_std=[0.2], size={"height": 8, "width": 8}
    )
    processor.save_pretrained(tmp_path)
    loaded = ViewmakerImageProcessor.from_pretrained(tmp_path)
    assert loaded.num_channels == 1 and not loaded.do_normalize
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(loaded.normalize_tensor(x), (x - 0.3) / 0.2)
    with pytest.raises(ValueError, match="num_channels"):
        ViewmakerImageProcessor(num_channels=2)


def test_view_grid_for_each_domain():
    for shape in [(5, 3, 8, 8), (5, 1, 8, 10), (5, 52, 6, 6), (5, 6, 30)]:
        x = torch.rand(shape)
        grid = make_view_grid(x, x + 0.01, torch.randn(shape), max_examples=4, scale=2)
        assert grid.width > 0 and grid.height > 0
        assert np.asarray(grid).std() > 0
    with pytest.raises(ValueError, match="one shape"):
        make_view_grid(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), torch.rand(2, 3, 4, 4))


def test_packaged_sample_and_demo(tmp_path):
    sample = load_fashion_mnist_sample()
    assert (len(sample["train"]), len(sample["test"])) == (4000, 1000)
    assert sample["train"].features["label"].names[0] == "T-shirt/top"
    demo_main(["--output_dir", str(tmp_path), "--num_images", "3"])
    assert PILImage.open(tmp_path / "views.png").size[0] > 0
    assert (tmp_path / "viewmaker" / "model.safetensors").is_file()


def test_a_packaged_builder_reads_the_data_dir_it_is_given(tmp_path, monkeypatch):
    folder = write_image_folder(tmp_path / "images", per_class=3)
    monkeypatch.chdir(tmp_path)  # nothing to find here: the builder must read `data_dir`
    splits = load_image_splits(dataset_name="imagefolder", data_dir=str(folder), cache_dir=str(tmp_path / "cache"))
    assert splits["train"].num_rows == 6


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--num_images", "0"], "at least 1"), (["--num_images", "100000"], "has"), (["--distortion_budget", "0"], "> 0")],
)
def test_demo_refuses_settings_it_cannot_draw(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit):
        demo_main(["--output_dir", str(tmp_path), *flags])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "views.png").exists()


def test_examples_end_where_the_split_ends(tmp_path):
    folder = write_image_folder(tmp_path / "images", per_class=2)
    examples = ImageExamples(load_image_splits(train_dir=str(folder))["train"], ViewmakerImageProcessor(num_channels=1))
    assert len(list(examples)) == 4
    with pytest.raises(IndexError):
        examples[4]
