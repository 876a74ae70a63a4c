"""The generated CIFAR-10-C corruptions (hf_viewmaker.evaluation.generated_corruptions) on tiny image batches."""

import numpy as np
import pytest

from hf_viewmaker.evaluation.corruptions import CIFAR10C_CORRUPTIONS
from hf_viewmaker.evaluation.generated_corruptions import CORRUPTIONS, PARAMETERS, corrupt


def _images(channels: int, size: int = 28, count: int = 6) -> np.ndarray:
    """Fashion-MNIST-like: a bright textured blob on a black background."""
    rng = np.random.default_rng(channels)
    rows, cols = np.mgrid[:size, :size]
    blob = ((rows - size / 2) ** 2 + (cols - size / 2) ** 2 < (size / 3) ** 2)[None, :, :, None]
    texture = rng.integers(120, 230, size=(count, size, size, channels))
    return (blob * texture).astype(np.uint8)


def _change(images: np.ndarray, name: str, severity: int) -> float:
    out = corrupt(images, name, severity, np.random.default_rng(0))
    return float(np.abs(out.astype(float) - images).mean())


def test_fourteen_of_the_benchmarks_corruptions_frost_needs_its_photographs():
    assert set(CORRUPTIONS) == set(CIFAR10C_CORRUPTIONS) - {"frost"}
    assert all(len(parameters) == 5 for parameters in PARAMETERS.values())


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_shape_dtype_and_severity(name):
    grey, rgb = _images(1), _images(3, size=20, count=3)
    for images in (grey, rgb):
        out = corrupt(images, name, 3, np.random.default_rng(0))
        assert out.shape == images.shape and out.dtype == np.uint8
    assert _change(grey, name, 1) > 0
    if name != "elastic_transform":
        assert _change(grey, name, 5) > _change(grey, name, 1)


def test_elastic_severities_trade_the_affine_jitter_for_displacements():
    # The recipe's severity 1 is a pure random affine map, and later ones shrink it while adding a displacement
    # field, so the pixel change is not monotone (nor is the released CIFAR-10-C's): every severity changes images.
    grey = _images(1)
    assert min(_change(grey, "elastic_transform", s) for s in range(1, 6)) > 1


def test_a_seed_reproduces_the_corruption():
    images = _images(3, size=16, count=2)
    for name in ("gaussian_noise", "glass_blur", "fog", "elastic_transform", "snow"):
        first = corrupt(images, name, 4, np.random.default_rng(7))
        np.testing.assert_array_equal(first, corrupt(images, name, 4, np.random.default_rng(7)))
        assert not np.array_equal(first, corrupt(images, name, 4, np.random.default_rng(8)))


def test_contrast_and_brightness_follow_the_recipe_exactly():
    images = _images(1, size=8, count=2)
    x = images / 255
    means = x.mean(axis=(1, 2), keepdims=True)
    expected = np.floor(np.clip((x - means) * 0.15 + means, 0, 1) * 255 + 1e-6)
    np.testing.assert_array_equal(corrupt(images, "contrast", 5, np.random.default_rng(0)), expected)
    expected = np.floor(np.clip(x + 0.3, 0, 1) * 255 + 1e-6)  # grey: HSV's value is the grey level
    np.testing.assert_array_equal(corrupt(images, "brightness", 5, np.random.default_rng(0)), expected)


def test_clear_errors():
    images = _images(1, size=8, count=1)
    with pytest.raises(ValueError, match="unknown corruption 'frost'.*gaussian_noise"):
        corrupt(images, "frost", 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"severity must be one of \(1, 2, 3, 4, 5\), got 6"):
        corrupt(images, "fog", 6, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"float32 of shape \(1, 8, 8, 1\)"):
        corrupt(images.astype(np.float32), "fog", 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"shape \(1, 8, 8\)"):
        corrupt(images[..., 0], "fog", 1, np.random.default_rng(0))
