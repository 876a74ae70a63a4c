"""CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019): robustness to 15 common corruptions (docs/method.md §5).

The official release (https://zenodo.org/record/2535967) is a folder of `<corruption>.npy` files, each a
`[50000, 32, 32, 3]` uint8 array holding the 10,000 CIFAR-10 test images corrupted at severity 1, then the same images
at severity 2, ..., up to 5, and `labels.npy` with the matching 50,000 labels (the test labels, repeated 5 times).

As the authors' `scripts/eval_cifar10_c.py`, images are scaled to [0, 1], normalised with the CIFAR statistics (the
encoder processor's), and classified by a linear-evaluation checkpoint (encoder + head); the summary is the mean
accuracy over the 15 corruptions, each averaged over its 5 severities.

A folder in the same layout may hold another test set or only some of the corruptions (generated ones:
`tools/make_corrupted_images.py`, Fashion-MNIST-C); its `manifest.json` then says which corruptions it holds, how many
images per severity and their `[H, W, C]` shape. A folder without a manifest is the release: all 15 corruptions of
`[32, 32, 3]` images. The summary names the corruptions it averaged, so that means over different sets are never
compared unnoticed.
"""

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..processing.image_processing_viewmaker import normalize_channels

# The 15 corruptions of the benchmark, in the order of the authors' script (the 4 "extra" ones of the release,
# gaussian_blur, saturate, spatter and speckle_noise, are not part of it).
CIFAR10C_CORRUPTIONS = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
CIFAR10C_SEVERITIES = (1, 2, 3, 4, 5)
CIFAR10C_IMAGES_PER_SEVERITY = 10_000
CIFAR10C_IMAGE_SHAPE = (32, 32, 3)
_NUM_SEVERITIES = 5
MANIFEST_FILE = "manifest.json"


@dataclass
class CorruptedSplit:
    """One corruption at one severity: `images` `[N, H, W, C]` uint8 (a memory-mapped view) and `labels` `[N]`."""

    corruption: str
    severity: int
    images: np.ndarray
    labels: np.ndarray

    def __iter__(self):
        # Unpacks as (corruption, severity, images, labels).
        return iter((self.corruption, self.severity, self.images, self.labels))


@dataclass(frozen=True)
class CorruptionLayout:
    """What a corruption folder holds: its corruptions, images per severity, the `(H, W, C)` of an image, and its
    `manifest.json` (`None` for the release)."""

    corruptions: tuple[str, ...]
    images_per_severity: int
    image_shape: tuple[int, int, int]
    manifest: dict | None


def _manifest_error(path: Path, problem: str) -> ValueError:
    return ValueError(
        f"{path}: {problem}; a manifest holds `corruptions` (a non-empty list of names), `images_per_severity` (a "
        "positive integer) and `image_shape` ([H, W, C], C 1 or 3)"
    )


def corruption_layout(root: str | Path, images_per_severity: int | None = None) -> CorruptionLayout:
    """The layout of a corruption folder: read from its `manifest.json`, else the release's (the 15 corruptions,
    10,000 images of 32x32x3 per severity). `images_per_severity`, when given, overrides either."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10-C folder not found: {root}")
    path = root / MANIFEST_FILE
    if not path.is_file():
        layout = CorruptionLayout(CIFAR10C_CORRUPTIONS, CIFAR10C_IMAGES_PER_SEVERITY, CIFAR10C_IMAGE_SHAPE, None)
    else:
        try:
            manifest = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise _manifest_error(path, f"not JSON ({error})") from error
        corruptions = manifest.get("corruptions") if isinstance(manifest, dict) else None
        if not corruptions or not isinstance(corruptions, list) or not all(isinstance(c, str) for c in corruptions):
            raise _manifest_error(path, f"`corruptions` is {corruptions!r}")
        count, shape = manifest.get("images_per_severity"), manifest.get("image_shape")
        if not isinstance(count, int) or count < 1:
            raise _manifest_error(path, f"`images_per_severity` is {count!r}")
        if not isinstance(shape, list) or len(shape) != 3 or shape[2] not in (1, 3) or min(shape) < 1:
            raise _manifest_error(path, f"`image_shape` is {shape!r}")
        layout = CorruptionLayout(tuple(corruptions), count, tuple(shape), manifest)
    if images_per_severity is not None:
        if images_per_severity < 1:
            raise ValueError(f"images_per_severity must be positive, got {images_per_severity}")
        layout = CorruptionLayout(layout.corruptions, images_per_severity, layout.image_shape, layout.manifest)
    return layout


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as error:
        raise ValueError(f"could not read the CIFAR-10-C file {path} as a .npy array: {error}") from error


def load_cifar10c(
    root: str | Path,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = CIFAR10C_SEVERITIES,
    images_per_severity: int | None = None,
    max_images_per_severity: int | None = None,
) -> Iterator[CorruptedSplit]:
    """Iterate over a CIFAR-10-C folder (the official layout), one `(corruption, severity, images, labels)` at a time.

    Every file is validated before anything is yielded, with an error that names the offending file; missing files
    are named all at once.

    Args:
        root: the folder holding `<corruption>.npy` and `labels.npy` (e.g. `CIFAR-10-C/`), and `manifest.json` when
            it is not the release ([`corruption_layout`]).
        corruptions: which corruptions, by file name (default: the manifest's, else the benchmark's 15).
        severities: which severities, among 1..5.
        images_per_severity: the layout: each file must hold exactly `5 * images_per_severity` images (default: the
            manifest's, else 10,000 as in the release).
        max_images_per_severity: use only the first N images of each severity (quick checks on the real data).

    Yields:
        [`CorruptedSplit`]s (they unpack as `corruption, severity, images, labels`); `images` is a read-only,
        memory-mapped `[N, H, W, C]` uint8 array, `labels` an `[N]` int64 array.
    """
    root = Path(root)
    layout = corruption_layout(root, images_per_severity)
    corruptions = layout.corruptions if corruptions is None else tuple(corruptions)
    unknown = [s for s in severities if s not in CIFAR10C_SEVERITIES]
    if unknown:
        raise ValueError(f"severities must lie in {CIFAR10C_SEVERITIES}, got {unknown}")
    count = layout.images_per_severity
    total = _NUM_SEVERITIES * count
    expected = (total, *layout.image_shape)
    height, width, channels = layout.image_shape

    missing = [f"{name}.npy" for name in ("labels", *corruptions) if not (root / f"{name}.npy").is_file()]
    if missing:
        hint = (
            f"its {MANIFEST_FILE} lists {', '.join(layout.corruptions)}"
            if layout.manifest is not None
            else f"without a {MANIFEST_FILE} it must be the release: the 15 corruptions, and labels.npy; a folder of "
            f"other corruptions needs a {MANIFEST_FILE} naming them (tools/make_corrupted_images.py writes one)"
        )
        raise FileNotFoundError(f"CIFAR-10-C folder {root} lacks {', '.join(missing)} ({hint})")
    labels_path = root / "labels.npy"
    labels = _load_array(labels_path)
    if labels.ndim != 1 or labels.shape[0] not in (total, count):
        raise ValueError(
            f"{labels_path}: expected {total} labels (the {count} test labels for each of the 5 "
            f"severities) of shape ({total},), got shape {labels.shape}; a folder with another number of images per "
            "severity needs images_per_severity"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{labels_path}: expected integer labels, got dtype {labels.dtype}")
    arrays = {}
    for corruption in corruptions:
        path = root / f"{corruption}.npy"
        images = _load_array(path)
        if images.shape != expected or images.dtype != np.uint8:
            raise ValueError(
                f"{path}: expected a uint8 array of shape {expected} (5 severities x {count} images of "
                f"{height}x{width}x{channels}, severity 1 first), got {images.dtype} of shape {images.shape}; a "
                "folder with another number of images per severity needs images_per_severity"
            )
        arrays[corruption] = images

    shown = count if max_images_per_severity is None else min(max_images_per_severity, count)
    for corruption, images in arrays.items():
        for severity in severities:
            start = (severity - 1) * count
            label_start = start if labels.shape[0] == total else 0
            yield CorruptedSplit(
                corruption,
                severity,
                images[start : start + shown],
                np.asarray(labels[label_start : label_start + shown], dtype=np.int64),
            )


@torch.no_grad()
def predict_images(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: np.ndarray,
    image_mean: Sequence[float],
    image_std: Sequence[float],
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Predicted classes `[N]` of `[N, H, W, C]` uint8 images: scaled to [0, 1], normalised with `image_mean` /
    `image_std`, then classified by `model` (a `ContrastiveResNetForClassification`, or any callable returning
    logits or an output with `.logits`)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    predictions = []
    for start in range(0, len(images), batch_size):
        # A copy: the memory-mapped release is read-only.
        batch = torch.from_numpy(np.array(images[start : start + batch_size])).to(device)
        pixel_values = normalize_channels(batch.permute(0, 3, 1, 2).float() / 255.0, image_mean, image_std)
        out = model(pixel_values)
        logits = out.logits if hasattr(out, "logits") else out
        predictions.append(logits.argmax(dim=1).cpu())
    return torch.cat(predictions) if predictions else torch.zeros(0, dtype=torch.long)


def evaluate_cifar10c(
    model: Callable[[torch.Tensor], torch.Tensor],
    root: str | Path,
    image_mean: Sequence[float],
    image_std: Sequence[float],
    batch_size: int = 256,
    device: torch.device | str | None = None,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = CIFAR10C_SEVERITIES,
    images_per_severity: int | None = None,
    max_images_per_severity: int | None = None,
    accelerator=None,
) -> dict:
    """Accuracy of a classifier on every corruption and severity of a CIFAR-10-C folder, and the benchmark's summary.

    Args:
        model: the classifier, already in eval mode and on `device`; it receives normalised `[B, C, H, W]` pixels.
        root, corruptions, severities, images_per_severity, max_images_per_severity: as in [`load_cifar10c`].
        image_mean, image_std: the normalisation of the model's inputs (its processor's statistics).
        batch_size: images per forward pass.
        device: where the model runs (default: the accelerator's device, else the CPU).
        accelerator: an `accelerate.Accelerator`: each process then classifies an interleaved share of the images and
            the correct counts are summed across processes (every process gets the full result).

    Returns:
        `{"mean_accuracy": the mean over corruptions of the mean over severities, "mean_error": 1 - that,
        "per_corruption": {corruption: mean accuracy over severities}, "per_severity": {corruption: {"1": acc, ...}},
        "corruptions": the ones averaged, "not_evaluated": the benchmark's corruptions left out of the mean,
        "severities": [...], "images_per_severity": N, "image_shape": [H, W, C], "manifest": the folder's
        manifest.json or None (the release)}`.
    """
    if device is None:
        device = accelerator.device if accelerator is not None else torch.device("cpu")
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    layout = corruption_layout(root, images_per_severity)
    corruptions = layout.corruptions if corruptions is None else tuple(corruptions)
    per_severity: dict[str, dict[str, float]] = {}
    count = None
    for corruption, severity, images, labels in load_cifar10c(
        root, corruptions, severities, layout.images_per_severity, max_images_per_severity
    ):
        count = len(labels)
        predictions = predict_images(model, images[rank::world], image_mean, image_std, batch_size, device)
        correct = torch.tensor(
            [(predictions.numpy() == labels[rank::world]).sum(), len(predictions)], dtype=torch.float64, device=device
        )
        if accelerator is not None:
            correct = accelerator.reduce(correct, reduction="sum")
        hits, total = correct.tolist()
        per_severity.setdefault(corruption, {})[str(severity)] = hits / total if total else float("nan")
    per_corruption = {c: float(np.mean(list(accs.values()))) for c, accs in per_severity.items()}
    mean_accuracy = float(np.mean(list(per_corruption.values())))
    return {
        "mean_accuracy": mean_accuracy,
        "mean_error": 1.0 - mean_accuracy,
        "per_corruption": per_corruption,
        "per_severity": per_severity,
        "corruptions": list(corruptions),
        "not_evaluated": [c for c in CIFAR10C_CORRUPTIONS if c not in corruptions],
        "severities": list(severities),
        "images_per_severity": count,
        "image_shape": list(layout.image_shape),
        "manifest": layout.manifest,
    }


__all__ = [
    "CIFAR10C_CORRUPTIONS",
    "CIFAR10C_IMAGES_PER_SEVERITY",
    "CIFAR10C_SEVERITIES",
    "MANIFEST_FILE",
    "CorruptedSplit",
    "CorruptionLayout",
    "corruption_layout",
    "evaluate_cifar10c",
    "load_cifar10c",
    "predict_images",
]
