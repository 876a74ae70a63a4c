"""The CIFAR-10-C corruptions (Hendrycks & Dietterich, ICLR 2019), generated for any uint8 image set (docs/method.md §5).

A numpy re-implementation of the authors' `make_cifar_c.py` (ImageNet-C repository), with its CIFAR severity
parameters, for `[N, H, W, C]` uint8 images with 1 or 3 channels (Fashion-MNIST is 28x28x1), without OpenCV, Wand,
scikit-image or SciPy. 14 of the benchmark's 15 corruptions; `frost` is left out: it blends crops of six frost
photographs shipped with the authors' code, an asset this project does not have.

Where the recipe differs, and why:

* Parameters the CIFAR script writes in units of its 32-pixel side (`elastic_transform`'s affine jitter, smoothing
  and displacement; `glass_blur`'s pixel-shuffling loop bounds; `fog`'s fractal crop) use the image's own side
  instead; `pixelate` shrinks to the same fraction of the side. The others are in pixels (blur radii, zoom factors)
  or intensities, and are kept as published: a 28-pixel Fashion-MNIST item fills its frame as a CIFAR object fills
  its 32 pixels, and the 12 % difference in side is smaller than the step between two severities.
* `motion_blur` and `snow`'s blurred flakes used ImageMagick's motion blur: here the same kernel (a one-sided line of
  `2 * radius + 1` taps, Gaussian weights of std `sigma`, edge pixels repeated), not the library itself.
* The recipe draws from NumPy's global state, image by image; here every corruption draws from the `Generator` it is
  given, for the whole batch at once, so a seed reproduces a set but not the release's exact noise.
* Grey images: `snow`'s "greyscale" is the image itself, `brightness` (value channel of HSV) adds to the grey level.
* Floats are cast to uint8 by truncation, as the release's `np.uint8(...)` does.
"""

import json
from collections.abc import Callable, Sequence
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from .corruptions import CIFAR10C_CORRUPTIONS, CIFAR10C_SEVERITIES, MANIFEST_FILE

SEVERITIES = CIFAR10C_SEVERITIES
LEFT_OUT = {"frost": "blends crops of the recipe's six frost photographs, which this project does not ship"}
# Images corrupted per draw: the noise of image i depends on the seed and the chunk it falls in, not on memory.
CHUNK = 1000

# The CIFAR parameters of make_cifar_c.py, severity 1 first. Elastic entries are fractions of the image side.
PARAMETERS: dict[str, tuple] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),  # disk radius, alias blur
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),  # sigma, max delta, iterations
    "motion_blur": ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)),  # radius, sigma
    "zoom_blur": tuple(np.arange(1, top, 0.01) for top in (1.06, 1.11, 1.16, 1.21, 1.26)),
    # mean, std, zoom, threshold, blur radius, blur sigma, blend
    "snow": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),  # strength, wibble decay
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    # displacement scale, displacement smoothing, affine jitter (x the image side)
    "elastic_transform": ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    "jpeg_compression": (80, 65, 58, 50, 40),
}


# Sampling helpers on [N, H, W, C] float arrays. Border modes, by the names of the libraries the recipe calls:
# "edge" repeats the last pixel, "reflect_101" mirrors about it (OpenCV's default, numpy's "reflect"), "symmetric"
# mirrors including it (SciPy's "reflect").
def _border_index(index: np.ndarray, size: int, mode: str) -> np.ndarray:
    if mode == "edge" or size == 1:
        return np.clip(index, 0, size - 1)
    if mode == "reflect_101":
        index = np.abs(index) % (2 * size - 2)
        return np.where(index >= size, 2 * size - 2 - index, index)
    index = index % (2 * size)  # symmetric
    return np.where(index >= size, 2 * size - 1 - index, index)


def _gaussian_weights(sigma: float, truncate: float) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return taps / taps.sum()


def _gaussian_filter(x: np.ndarray, sigma: float, mode: str = "edge", truncate: float = 4.0) -> np.ndarray:
    """scikit-image's `gaussian` (SciPy's separable filter) over the two spatial axes of `[N, H, W, C]`."""
    if sigma <= 0:
        return x
    weights = _gaussian_weights(sigma, truncate)
    radius = len(weights) // 2
    for axis in (1, 2):
        size = x.shape[axis]
        index = _border_index(np.arange(-radius, size + radius), size, mode)
        padded = np.take(x, index, axis=axis)
        x = sum(w * np.take(padded, np.arange(i, i + size), axis=axis) for i, w in enumerate(weights))
    return x


def _bilinear(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, mode: str) -> np.ndarray:
    """`x` `[N, H, W, C]` sampled at float coordinates `rows`, `cols` `[N, H', W']`, bilinearly."""
    height, width = x.shape[1:3]
    top, left = np.floor(rows), np.floor(cols)
    dy, dx = (rows - top)[..., None], (cols - left)[..., None]
    top, left = top.astype(np.int64), left.astype(np.int64)
    batch = np.arange(len(x))[:, None, None]

    def at(r, c):
        return x[batch, _border_index(r, height, mode), _border_index(c, width, mode)]

    upper = at(top, left) * (1 - dx) + at(top, left + 1) * dx
    lower = at(top + 1, left) * (1 - dx) + at(top + 1, left + 1) * dx
    return upper * (1 - dy) + lower * dy


def _zoom_axis(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """SciPy's `zoom(order=1)` along one axis: output pixel i samples input i * (n - 1) / (size - 1)."""
    n = x.shape[axis]
    position = np.arange(size) * ((n - 1) / (size - 1) if size > 1 else 0.0)
    low = np.minimum(np.floor(position).astype(np.int64), n - 1)
    high = np.minimum(low + 1, n - 1)
    shape = [1] * x.ndim
    shape[axis] = size
    weight = (position - low).reshape(shape)
    return np.take(x, low, axis=axis) * (1 - weight) + np.take(x, high, axis=axis) * weight


def _clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """The recipe's `clipped_zoom`: the centre `ceil(side / factor)` crop zoomed by `factor`, cropped back to size."""
    for axis in (1, 2):
        side = x.shape[axis]
        crop = int(np.ceil(side / factor))
        start = (side - crop) // 2
        x = np.take(x, np.arange(start, start + crop), axis=axis)
        x = _zoom_axis(x, int(np.round(crop * factor)), axis)
        trim = (x.shape[axis] - side) // 2
        x = np.take(x, np.arange(trim, trim + side), axis=axis)
    return x


def _motion_blur(x: np.ndarray, radius: int, sigma: float, angles: np.ndarray) -> np.ndarray:
    """ImageMagick's `MotionBlurImage`: each pixel the Gaussian-weighted mean of the `2 * radius + 1` pixels on a ray
    from it at `angles[n]` degrees (one per image), edge pixels repeated."""
    taps = 2 * radius + 1
    weights = np.exp(-0.5 * (np.arange(taps) / sigma) ** 2)
    weights /= weights.sum()
    radians = np.deg2rad(angles)
    height, width = x.shape[1:3]
    batch = np.arange(len(x))[:, None, None]
    out = np.zeros_like(x)
    for i, weight in enumerate(weights):
        step_x = np.ceil(i * np.cos(radians) - 0.5).astype(np.int64)
        step_y = np.ceil(i * np.sin(radians) - 0.5).astype(np.int64)
        rows = np.clip(np.arange(height)[None, :, None] + step_y[:, None, None], 0, height - 1)
        cols = np.clip(np.arange(width)[None, None, :] + step_x[:, None, None], 0, width - 1)
        out += weight * x[batch, rows, cols]
    return out


def _plasma_fractal(count: int, size: int, wibble_decay: float, rng: np.random.Generator) -> np.ndarray:
    """The recipe's diamond-square `plasma_fractal`, `count` maps at once, `[count, size, size]` in [0, 1]; `size`
    is a power of two."""
    maps = np.zeros((count, size, size))
    step, wibble = size, 100.0

    def wibbled_mean(total):
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = maps[:, 0:size:step, 0:size:step]
        square = corners + np.roll(corners, -1, axis=1)
        square += np.roll(square, -1, axis=2)
        maps[:, half:size:step, half:size:step] = wibbled_mean(square)
        centres = maps[:, half:size:step, half:size:step]
        corners = maps[:, 0:size:step, 0:size:step]
        across = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        maps[:, 0:size:step, half:size:step] = wibbled_mean(across)
        down = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        maps[:, half:size:step, 0:size:step] = wibbled_mean(down)
        step //= 2
        wibble /= wibble_decay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / maps.max(axis=(1, 2), keepdims=True)


def _grey(x: np.ndarray) -> np.ndarray:
    # OpenCV's RGB2GRAY weights; a grey image is its own greyscale.
    return x if x.shape[-1] == 1 else x @ np.array([[0.299], [0.587], [0.114]])


# The corruptions: `(x, parameter, rng)` with `x` `[N, H, W, C]` float64 in [0, 1], returning values in [0, 1]
# (clipped by the caller).
def gaussian_noise(x: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    return x + rng.normal(scale=scale, size=x.shape)


def shot_noise(x: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    return rng.poisson(x * photons) / photons


def impulse_noise(x: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    # scikit-image's random_noise(mode="s&p"): each value flipped with probability `amount`, half to 1, half to 0.
    flipped = rng.random(x.shape) < amount
    salt = rng.random(x.shape) < 0.5
    return np.where(flipped, salt.astype(x.dtype), x)


def defocus_blur(x: np.ndarray, parameter: tuple, rng: np.random.Generator) -> np.ndarray:
    radius, alias_blur = parameter
    # The recipe's `disk`: a 17x17 aliased disk, normalised, then blurred by OpenCV's 3x3 Gaussian of std alias_blur.
    grid = np.arange(-8, 9)
    disk = ((grid[:, None] ** 2 + grid[None, :] ** 2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    taps = np.exp(-0.5 * (np.arange(-1, 2) / alias_blur) ** 2)
    taps /= taps.sum()
    padded = np.pad(disk, 1)
    disk = sum(t * padded[i : i + 17, 1:-1] for i, t in enumerate(taps))
    padded = np.pad(disk, ((0, 0), (1, 1)))
    kernel = sum(t * padded[:, i : i + 17] for i, t in enumerate(taps))
    # OpenCV's filter2D (a correlation, the border mirrored about the edge pixel), over the kernel's support.
    height, width = x.shape[1:3]
    out = np.zeros_like(x)
    for dy, dx in zip(*np.nonzero(kernel > 1e-12), strict=True):
        rows = _border_index(np.arange(height) + dy - 8, height, "reflect_101")
        cols = _border_index(np.arange(width) + dx - 8, width, "reflect_101")
        out += kernel[dy, dx] * x[:, rows][:, :, cols]
    return out


def glass_blur(x: np.ndarray, parameter: tuple, rng: np.random.Generator) -> np.ndarray:
    sigma, delta, iterations = parameter
    height, width = x.shape[1:3]
    x = np.floor(_gaussian_filter(x, sigma) * 255) / 255  # the recipe rounds to uint8 before shuffling
    batch = np.arange(len(x))
    # Locally shuffle pixels in the recipe's order (bottom-right to top-left). Its "swap" of two RGB pixels,
    # `x[h, w], x[h', w'] = x[h', w'], x[h, w]`, assigns numpy views, so it only copies the neighbour into (h, w): the
    # released images were made that way, so it is copied here too (a true swap drags pixels across the image).
    for _ in range(iterations):
        for row in range(height - delta, delta, -1):
            for col in range(width - delta, delta, -1):
                dy, dx = rng.integers(-delta, delta, size=(2, len(x)))  # NumPy's randint: the upper bound excluded
                x[batch, row, col] = x[batch, row + dy, col + dx]
    return _gaussian_filter(x, sigma)


def motion_blur(x: np.ndarray, parameter: tuple, rng: np.random.Generator) -> np.ndarray:
    radius, sigma = parameter
    return _motion_blur(x, radius, sigma, rng.uniform(-45, 45, len(x)))


def zoom_blur(x: np.ndarray, factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros_like(x)
    for factor in factors:
        out += _clipped_zoom(x, factor)
    return (x + out) / (len(factors) + 1)


def snow(x: np.ndarray, parameter: tuple, rng: np.random.Generator) -> np.ndarray:
    mean, std, zoom, threshold, radius, sigma, blend = parameter
    layer = rng.normal(mean, std, size=(*x.shape[:3], 1))
    layer = _clipped_zoom(layer, zoom)
    layer[layer < threshold] = 0
    layer = np.floor(np.clip(layer, 0, 1) * 255)  # the recipe blurs an 8-bit picture of the flakes
    layer = np.round(_motion_blur(layer, radius, sigma, rng.uniform(-135, -45, len(x)))) / 255
    x = blend * x + (1 - blend) * np.maximum(x, _grey(x) * 1.5 + 0.5)
    return x + layer + np.rot90(layer, k=2, axes=(1, 2))


def fog(x: np.ndarray, parameter: tuple, rng: np.random.Generator) -> np.ndarray:
    strength, wibble_decay = parameter
    height, width = x.shape[1:3]
    size = 1 << int(np.ceil(np.log2(max(height, width, 2))))  # the recipe's 32 for CIFAR: the next power of two
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    x = x + strength * _plasma_fractal(len(x), size, wibble_decay, rng)[:, :height, :width, None]
    return x * peak / (peak + strength)


def brightness(x: np.ndarray, shift: float, rng: np.random.Generator) -> np.ndarray:
    # scikit-image's rgb2hsv, V += shift (clipped), hsv2rgb: every channel scaled by the new V over the old one.
    value = x.max(axis=3, keepdims=True)
    brighter = np.clip(value + shift, 0, 1)
    return np.where(value > 0, x * brighter / np.maximum(value, 1e-12), brighter)


def contrast(x: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    means = x.mean(axis=(1, 2), keepdims=True)
    return (x - means) * factor + means


def elastic_transform(x: np.ndarray, parameter: tuple, rng: np.random.Generator) -> np.ndarray:
    height, width = x.shape[1:3]
    side = min(height, width)
    alpha, sigma, jitter = (value * side for value in parameter)
    # A random affine map of three points around the centre (OpenCV's getAffineTransform + warpAffine, mirrored
    # border), then a smooth random displacement field (SciPy's map_coordinates, order 1, mirrored border).
    centre = np.array([width // 2, height // 2], dtype=np.float64)  # (x, y)
    square = side // 3
    source = np.stack([centre + square, [centre[0] + square, centre[1] - square], centre - square])
    target = source + rng.uniform(-jitter, jitter, size=(len(x), 3, 2))
    # The inverse map, target -> source: warpAffine samples the source at M^-1 of each output pixel.
    ones = np.ones((len(x), 3, 1))
    inverse = np.linalg.solve(np.concatenate([target, ones], axis=2), np.broadcast_to(source, (len(x), 3, 2)))
    cols, rows = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    grid = np.stack([cols, rows, np.ones_like(cols)], axis=-1)  # [H, W, 3]
    where = np.einsum("hwk,nkj->nhwj", grid, inverse)
    x = _bilinear(x, where[..., 1], where[..., 0], "reflect_101")
    shifts = rng.uniform(-1, 1, size=(2, len(x), height, width, 1))
    dx = _gaussian_filter(shifts[0], sigma, mode="symmetric", truncate=3)[..., 0] * alpha
    dy = _gaussian_filter(shifts[1], sigma, mode="symmetric", truncate=3)[..., 0] * alpha
    return _bilinear(x, rows + dy, cols + dx, "symmetric")


def _per_image(x: np.ndarray, change: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    images = np.floor(np.clip(x, 0, 1) * 255).astype(np.uint8)
    mode = "L" if x.shape[-1] == 1 else "RGB"
    out = [np.asarray(change(Image.fromarray(image.squeeze(-1) if mode == "L" else image, mode))) for image in images]
    return np.stack(out).reshape(x.shape) / 255


def pixelate(x: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    height, width = x.shape[1:3]
    small = (int(width * fraction), int(height * fraction))
    return _per_image(x, lambda image: image.resize(small, Image.BOX).resize((width, height), Image.BOX))


def jpeg_compression(x: np.ndarray, quality: int, rng: np.random.Generator) -> np.ndarray:
    def compress(image):
        buffer = BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        return Image.open(buffer)

    return _per_image(x, compress)


CORRUPTIONS: dict[str, Callable[[np.ndarray, object, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "snow": snow,
    "fog": fog,
    "brightness": brightness,
    "contrast": contrast,
    "elastic_transform": elastic_transform,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
}


def corrupt(images: np.ndarray, corruption: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """`images` `[N, H, W, C]` uint8 (C = 1 or 3) with one corruption at one severity (1..5), as uint8 of the same
    shape. Deterministic given `rng`'s state."""
    if corruption not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {corruption!r}; generated ones: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"expected uint8 images of shape [N, H, W, C] with C 1 or 3, got {images.dtype} of shape {images.shape}"
        )
    x = images.astype(np.float64) / 255
    out = CORRUPTIONS[corruption](x, PARAMETERS[corruption][severity - 1], rng)
    # The tolerance keeps a value that is exactly k / 255 (an untouched pixel) at k despite float rounding.
    return np.floor(np.clip(out, 0, 1) * 255 + 1e-6).astype(np.uint8)


def write_corrupted_folder(
    images: np.ndarray,
    labels: np.ndarray,
    output_dir: str | Path,
    corruptions: Sequence[str] | None = None,
    seed: int = 0,
    source: dict | None = None,
    name: str | None = None,
) -> dict:
    """Write `images` `[N, H, W, C]` uint8 corrupted in the CIFAR-10-C release's layout, which
    [`~hf_viewmaker.evaluation.corruptions.load_cifar10c`] reads: `<corruption>.npy` `[5N, H, W, C]` (severity 1
    first), `labels.npy` `[5N]`, and `manifest.json` (its `name`, default the folder's, the corruptions, layout, seed,
    `source` and what was left out).

    Each (corruption, severity, chunk of `CHUNK` images) draws from its own generator, seeded by `seed`, the
    corruption's place in the benchmark and the severity and chunk, so a subset of corruptions reproduces the files
    of the full set. Returns the manifest."""
    names = list(CORRUPTIONS) if corruptions is None else list(corruptions)
    unknown = [corruption for corruption in names if corruption not in CORRUPTIONS]
    if unknown or not names:
        raise ValueError(f"corruptions {unknown or names}: choose among {', '.join(CORRUPTIONS)}")
    labels = np.asarray(labels)
    if len(labels) != len(images) or labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"expected {len(images)} integer labels of shape ({len(images)},), got {labels.dtype} "
            f"of shape {labels.shape}"
        )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    count = len(images)
    for corruption in names:
        stacked = np.lib.format.open_memmap(
            output_dir / f"{corruption}.npy",
            mode="w+",
            dtype=np.uint8,
            shape=(len(SEVERITIES) * count, *images.shape[1:]),
        )
        for severity in SEVERITIES:
            for start in range(0, count, CHUNK):
                rng = np.random.default_rng([seed, CIFAR10C_CORRUPTIONS.index(corruption), severity, start // CHUNK])
                chunk = images[start : start + CHUNK]
                offset = (severity - 1) * count + start
                stacked[offset : offset + len(chunk)] = corrupt(chunk, corruption, severity, rng)
        stacked.flush()
        del stacked
    np.save(output_dir / "labels.npy", np.tile(labels.astype(np.int64), len(SEVERITIES)))
    manifest = {
        "name": name or output_dir.name,
        "corruptions": names,
        "severities": list(SEVERITIES),
        "images_per_severity": count,
        "image_shape": list(images.shape[1:]),
        "seed": seed,
        "recipe": "make_cifar_c.py of Hendrycks & Dietterich (2019), CIFAR parameters; "
        "hf_viewmaker.evaluation.generated_corruptions (docs/method.md §5)",
        "left_out": LEFT_OUT,
        "source": source,
    }
    (output_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


__all__ = ["CORRUPTIONS", "LEFT_OUT", "PARAMETERS", "SEVERITIES", "corrupt", "write_corrupted_folder"]
