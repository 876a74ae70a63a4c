"""Fashion-MNIST-C end to end, tiny: tools/make_corrupted_images.py on a few images of the packaged Fashion-MNIST
sample, then training/linear_eval.py --cifar10c_dir on a fresh 28x28 grey encoder."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from test_corruptions import make_fake_cifar10c

from hf_viewmaker import ContrastiveResNetConfig, ContrastiveResNetModel, ViewmakerImageProcessor
from hf_viewmaker.data import FASHION_MNIST_SAMPLE_FILES
from hf_viewmaker.evaluation.corruptions import CIFAR10C_CORRUPTIONS, load_cifar10c

from helpers import load_script, run_in_process

REPO_ROOT = Path(__file__).resolve().parents[1]
GENERATED = ["gaussian_noise", "contrast", "fog"]
MEAN, STD = [0.286], [0.353]  # training/configs/fashion_mnist.yaml's statistics

pytestmark = pytest.mark.usefixtures("one_thread")

linear_eval = load_script(REPO_ROOT / "training" / "linear_eval.py")


@pytest.fixture(scope="module")
def corrupted(tmp_path_factory) -> Path:
    """5 test images of the packaged sample, 3 corruptions x 5 severities, by the tool."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(REPO_ROOT / "tools"))
        tool = load_script(REPO_ROOT / "tools" / "make_corrupted_images.py")
    root = tmp_path_factory.mktemp("fashion_mnist_c")
    tool.main(
        ["--input", FASHION_MNIST_SAMPLE_FILES["test"], "--output_dir", str(root), "--max_images", "5"]
        + ["--corruptions", *GENERATED, "--seed", "3"]
    )
    return root


@pytest.fixture(scope="module")
def grey_run(tmp_path_factory) -> Path:
    """A freshly initialised 28x28 greyscale encoder with its processor (the Fashion-MNIST recipe's inputs)."""
    root = tmp_path_factory.mktemp("grey_run")
    torch.manual_seed(0)
    config = ContrastiveResNetConfig(
        depths=[1, 1], hidden_sizes=[4, 8], stem_channels=4, embedding_dim=8, num_channels=1, image_size=28
    )
    ContrastiveResNetModel(config).save_pretrained(root / "encoder")
    processor = ViewmakerImageProcessor(
        num_channels=1, size={"height": 28, "width": 28}, image_mean=MEAN, image_std=STD, do_normalize=True
    )
    processor.save_pretrained(root / "encoder")
    return root


def _evaluate(run: Path, folder: Path, output_dir: Path) -> None:
    sample = FASHION_MNIST_SAMPLE_FILES["test"]
    run_in_process(
        linear_eval.main,
        ["--model_name_or_path", str(run), "--train_file", sample, "--validation_file", sample]
        + ["--max_train_samples", "16", "--max_eval_samples", "8", "--train_views", "none"]
        + ["--num_train_epochs", "1", "--per_device_train_batch_size", "8", "--report_to", "none"]
        + ["--cifar10c_dir", str(folder), "--output_dir", str(output_dir)],
    )


def test_the_tool_writes_the_release_layout_with_a_manifest(corrupted):
    manifest = json.loads((corrupted / "manifest.json").read_text())
    assert manifest["corruptions"] == GENERATED and manifest["seed"] == 3 and manifest["name"] == corrupted.name
    assert (manifest["images_per_severity"], manifest["image_shape"]) == (5, [28, 28, 1])
    assert (
        manifest["source"]["images"] == 5
        and len(manifest["source"]["sha256"]) == 64
        and "frost" in manifest["left_out"]
    )
    labels = Dataset.from_parquet(FASHION_MNIST_SAMPLE_FILES["test"])["label"][:5]
    splits = list(load_cifar10c(corrupted))  # the layout comes from the manifest
    assert [(s.corruption, s.severity) for s in splits] == [(c, s) for c in GENERATED for s in range(1, 6)]
    for split in splits:
        assert split.images.shape == (5, 28, 28, 1) and split.labels.tolist() == labels


def test_grey_corrupted_images_are_scaled_as_the_clean_ones(corrupted):
    # The probe's clean inputs come from the processor (PIL "L" images, no resize at 28, / 255); the corrupted ones
    # are the stored uint8 / 255: the same pixels for the same picture.
    images = np.array(next(load_cifar10c(corrupted)).images)
    from PIL import Image

    processor = ViewmakerImageProcessor(num_channels=1, size={"height": 28, "width": 28})
    pixels = processor([Image.fromarray(image[..., 0]) for image in images], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(pixels, torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)


def test_linear_eval_reports_exactly_the_generated_corruptions(corrupted, grey_run, tmp_path):
    _evaluate(grey_run, corrupted, tmp_path / "eval")
    results = json.loads((tmp_path / "eval" / "eval_results.json").read_text())["cifar10c"]
    assert results["corruptions"] == GENERATED and set(results["per_corruption"]) == set(GENERATED)
    assert set(results["per_severity"]["fog"]) == {"1", "2", "3", "4", "5"}
    assert results["not_evaluated"] == [c for c in CIFAR10C_CORRUPTIONS if c not in GENERATED]
    assert results["image_shape"] == [28, 28, 1] and results["images_per_severity"] == 5
    assert results["manifest"]["name"] == corrupted.name
    assert results["mean_accuracy"] == pytest.approx(np.mean(list(results["per_corruption"].values())))


def test_a_folder_that_does_not_fit_fails_before_training(corrupted, grey_run, tmp_path):
    rgb = tmp_path / "CIFAR-10-C"
    make_fake_cifar10c(rgb)
    with pytest.raises(ValueError, match=r"--cifar10c_dir .*CIFAR-10-C holds 32x32x3 .* probe's inputs are 28x28x1"):
        _evaluate(grey_run, rgb, tmp_path / "rgb")
    (rgb / "frost.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks frost\.npy .*manifest\.json"):
        load_cifar10c(rgb, images_per_severity=4).__next__()
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    for name in ("manifest.json", "labels.npy", "fog.npy"):
        (incomplete / name).write_bytes((corrupted / name).read_bytes())
    with pytest.raises(FileNotFoundError, match=r"lacks gaussian_noise\.npy, contrast\.npy .*lists gaussian_noise"):
        _evaluate(grey_run, incomplete, tmp_path / "incomplete_eval")
    assert not (tmp_path / "incomplete_eval" / "eval_results.json").exists()
