"""CIFAR-10-C: the loader on a tiny fake release (the official layout, 4 images per severity) and the evaluation."""

import json

import numpy as np
import pytest
import torch

from hf_viewmaker import ContrastiveResNetConfig, ContrastiveResNetForClassification
from hf_viewmaker.evaluation.corruptions import (
    CIFAR10C_CORRUPTIONS,
    corruption_layout,
    evaluate_cifar10c,
    load_cifar10c,
    predict_images,
)

N = 4  # images per severity in the fake release


pytestmark = pytest.mark.usefixtures("one_thread")


def _marker(corruption_index: int, severity: int) -> int:
    return corruption_index * 5 + severity  # < 256: pixel [1, 0, 0] of every image says where it came from


def make_fake_cifar10c(root, images_per_severity: int = N, seed: int = 0) -> np.ndarray:
    """A CIFAR-10-C folder in the official layout; returns the `[N]` test labels.

    Pixel [0, 0, 0] of every image holds `label * 20`, except that at severity s the first s - 1 images hold a wrong
    label (all images are right for `contrast`), so an oracle reading that pixel scores 1, 3/4, 1/2, 1/4, 0 over the
    severities (1 for contrast)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    labels = rng.integers(0, 10, size=images_per_severity)
    for index, corruption in enumerate(CIFAR10C_CORRUPTIONS):
        images = rng.integers(0, 256, size=(5 * images_per_severity, 32, 32, 3), dtype=np.uint8)
        for severity in range(1, 6):
            block = images[(severity - 1) * images_per_severity : severity * images_per_severity]
            shown = labels.copy()
            if corruption != "contrast":
                shown[: severity - 1] = (shown[: severity - 1] + 1) % 10
            block[:, 0, 0, 0] = shown * 20
            block[:, 1, 0, 0] = _marker(index, severity)
        np.save(root / f"{corruption}.npy", images)
    np.save(root / "labels.npy", np.tile(labels, 5))
    return labels


@pytest.fixture
def fake_root(tmp_path):
    root = tmp_path / "CIFAR-10-C"
    labels = make_fake_cifar10c(root)
    return root, labels


class Oracle(torch.nn.Module):
    """Reads the label from pixel [0, 0, 0] (normalised with mean 0, std 1)."""

    def forward(self, pixel_values):
        label = torch.round(pixel_values[:, 0, 0, 0] * 255 / 20).long()
        return torch.nn.functional.one_hot(label, 10).float()


def test_loader_yields_every_corruption_and_severity_in_order(fake_root):
    root, labels = fake_root
    splits = list(load_cifar10c(root, images_per_severity=N))
    assert [(s.corruption, s.severity) for s in splits] == [(c, s) for c in CIFAR10C_CORRUPTIONS for s in range(1, 6)]
    for corruption, severity, images, split_labels in splits:
        assert images.shape == (N, 32, 32, 3) and images.dtype == np.uint8
        assert (images[:, 1, 0, 0] == _marker(CIFAR10C_CORRUPTIONS.index(corruption), severity)).all()
        np.testing.assert_array_equal(split_labels, labels)
    first = next(
        iter(load_cifar10c(root, corruptions=["fog"], severities=[3], images_per_severity=N, max_images_per_severity=2))
    )
    assert (first.corruption, first.severity) == ("fog", 3)
    assert (first.images.shape, first.labels.shape) == ((2, 32, 32, 3), (2,))


def test_labels_may_be_given_once_for_all_severities(fake_root):
    root, labels = fake_root
    np.save(root / "labels.npy", labels)
    *_, last = load_cifar10c(root, corruptions=["snow"], images_per_severity=N)
    np.testing.assert_array_equal(last.labels, labels)


def test_clear_errors_name_the_file(fake_root):
    root, _ = fake_root
    with pytest.raises(ValueError, match=r"labels\.npy.*\(50000,\).*images_per_severity"):
        next(load_cifar10c(root, corruptions=["frost"]))  # the default layout: 10,000 images per severity
    np.save(root / "labels.npy", np.zeros(50_000, np.int64))
    with pytest.raises(ValueError, match=r"frost\.npy.*\(50000, 32, 32, 3\).*images_per_severity"):
        next(load_cifar10c(root, corruptions=["frost"]))
    np.save(root / "labels.npy", np.zeros(5 * N, np.int64))
    np.save(root / "fog.npy", np.zeros((5 * N, 32, 32, 1), np.uint8))
    with pytest.raises(ValueError, match=r"fog\.npy.*\(20, 32, 32, 3\).*\(20, 32, 32, 1\)"):
        list(load_cifar10c(root, images_per_severity=N))
    np.save(root / "fog.npy", np.zeros((5 * N, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match=r"fog\.npy.*float32"):
        list(load_cifar10c(root, images_per_severity=N))
    (root / "fog.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"fog\.npy"):
        list(load_cifar10c(root, images_per_severity=N))
    np.save(root / "labels.npy", np.zeros(7, np.int64))
    with pytest.raises(ValueError, match=r"labels\.npy.*\(7,\)"):
        list(load_cifar10c(root, corruptions=["snow"], images_per_severity=N))
    np.save(root / "labels.npy", np.zeros(5 * N, np.int64))
    (root / "broken.npy").write_bytes(b"not an array")
    with pytest.raises(ValueError, match=r"broken\.npy"):
        list(load_cifar10c(root, corruptions=["broken"], images_per_severity=N))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list(load_cifar10c(root / "nowhere"))


def test_evaluation_reports_per_corruption_and_mean_accuracy(fake_root):
    root, _ = fake_root
    results = evaluate_cifar10c(
        Oracle(), root, image_mean=[0, 0, 0], image_std=[1, 1, 1], batch_size=3, images_per_severity=N
    )
    assert set(results["per_corruption"]) == set(CIFAR10C_CORRUPTIONS) and len(CIFAR10C_CORRUPTIONS) == 15
    assert results["per_severity"]["fog"] == pytest.approx({"1": 1.0, "2": 0.75, "3": 0.5, "4": 0.25, "5": 0.0})
    assert results["per_corruption"]["fog"] == pytest.approx(0.5)
    assert results["per_corruption"]["contrast"] == pytest.approx(1.0)
    assert results["mean_accuracy"] == pytest.approx((14 * 0.5 + 1.0) / 15)
    assert results["mean_error"] == pytest.approx(1 - results["mean_accuracy"])
    assert results["images_per_severity"] == N
    subset = evaluate_cifar10c(
        Oracle(), root, [0, 0, 0], [1, 1, 1], corruptions=["contrast"], severities=[5], images_per_severity=N
    )
    assert subset["mean_accuracy"] == 1.0 and subset["per_severity"] == {"contrast": {"5": 1.0}}


def test_evaluation_of_a_linear_probe_normalises_like_its_processor(fake_root):
    root, _ = fake_root
    torch.manual_seed(0)
    config = ContrastiveResNetConfig(
        depths=[1, 1],
        hidden_sizes=[4, 8],
        stem_channels=4,
        embedding_dim=8,
        num_labels=10,
        classifier_features="prepool",
        image_size=32,
    )
    model = ContrastiveResNetForClassification(config).eval()
    mean, std = [0.491, 0.482, 0.446], [0.247, 0.243, 0.261]
    results = evaluate_cifar10c(model, root, mean, std, corruptions=["shot_noise"], images_per_severity=N)
    _, _, images, labels = next(iter(load_cifar10c(root, corruptions=["shot_noise"], images_per_severity=N)))
    pixels = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float() / 255
    pixels = (pixels - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = (model(pixels).logits.argmax(1).numpy() == labels).mean()
    assert results["per_severity"]["shot_noise"]["1"] == pytest.approx(expected)
    assert torch.equal(predict_images(model, images, mean, std, batch_size=3), model(pixels).logits.argmax(1))


def test_a_manifest_sets_the_layout_and_a_bad_one_is_named(fake_root):
    root, _ = fake_root
    manifest = {"corruptions": ["fog", "snow"], "images_per_severity": N, "image_shape": [32, 32, 3]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    layout = corruption_layout(root)
    assert (layout.corruptions, layout.images_per_severity, layout.image_shape) == (("fog", "snow"), N, (32, 32, 3))
    assert [(s.corruption, s.severity) for s in load_cifar10c(root)] == [
        (c, s) for c in ("fog", "snow") for s in range(1, 6)
    ]
    for key, value in (("corruptions", []), ("images_per_severity", 0), ("image_shape", [32, 32, 2])):
        (root / "manifest.json").write_text(json.dumps({**manifest, key: value}))
        with pytest.raises(ValueError, match=rf"manifest\.json: `{key}` is"):
            corruption_layout(root)
    (root / "manifest.json").write_text("{")
    with pytest.raises(ValueError, match=r"manifest\.json: not JSON"):
        corruption_layout(root)
