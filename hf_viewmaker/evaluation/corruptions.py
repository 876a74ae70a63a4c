"""CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019): robustness to 15 common corruptions (docs/method.md §5).

The official release (https://zenodo.org/record/2535967) is a folder of `<corruption>.npy` files, each a
`[50000, 32, 32, 3]` uint8 array holding the 10,000 CIFAR-10 test images corrupted at severity 1, then the same images
at severity 2, ..., up to 5, and `labels.npy` with the matching 50,000 labels (the test labels, repeated 5 times).

As the authors' `scripts/eval_cifar10_c.py`, images are scaled to [0, 1], normalised with the CIFAR statistics (the
encoder processor's), and classified by a linear-evaluation checkpoint (encoder + head); the summary is the mean
accuracy over the 15 corruptions, each averaged over its 5 severities.
"""

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


@dataclass
class CorruptedSplit:
    """One corruption at one severity: `images` `[N, 32, 32, 3]` uint8 (a memory-mapped view) and `labels` `[N]`."""

    corruption: str
    severity: int
    images: np.ndarray
    labels: np.ndarray

    def __iter__(self):
        # Unpacks as (corruption, severity, images, labels).
        return iter((self.corruption, self.severity, self.images, self.labels))


def _load_array(path: Path, layout_hint: str) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10-C file not found: {path} ({layout_hint})")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as error:
        raise ValueError(f"could not read the CIFAR-10-C file {path} as a .npy array: {error}") from error


def load_cifar10c(
    root: str | Path,
    corruptions: Sequence[str] = CIFAR10C_CORRUPTIONS,
    severities: Sequence[int] = CIFAR10C_SEVERITIES,
    images_per_severity: int = CIFAR10C_IMAGES_PER_SEVERITY,
    max_images_per_severity: int | None = None,
) -> Iterator[CorruptedSplit]:
    """Iterate over CIFAR-10-C in its official layout, one `(corruption, severity, images, labels)` at a time.

    Every file is validated before anything is yielded, with an error that names the offending file.

    Args:
        root: the folder holding `<corruption>.npy` and `labels.npy` (e.g. `CIFAR-10-C/`).
        corruptions: which corruptions, by file name (default: the benchmark's 15).
        severities: which severities, among 1..5.
        images_per_severity: the layout: each file must hold exactly `5 * images_per_severity` images (10,000 in the
            release; smaller for test folders).
        max_images_per_severity: use only the first N images of each severity (quick checks on the real data).

    Yields:
        [`CorruptedSplit`]s (they unpack as `corruption, severity, images, labels`); `images` is a read-only,
        memory-mapped `[N, 32, 32, 3]` uint8 array, `labels` an `[N]` int64 array.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR-10-C folder not found: {root}")
    if images_per_severity < 1:
        raise ValueError(f"images_per_severity must be positive, got {images_per_severity}")
    unknown = [s for s in severities if s not in CIFAR10C_SEVERITIES]
    if unknown:
        raise ValueError(f"severities must lie in {CIFAR10C_SEVERITIES}, got {unknown}")
    total = _NUM_SEVERITIES * images_per_severity
    expected = (total, *CIFAR10C_IMAGE_SHAPE)
    hint = f"the official layout: one <corruption>.npy of shape {expected} uint8 per corruption, and labels.npy"

    labels_path = root / "labels.npy"
    labels = _load_array(labels_path, hint)
    if labels.ndim != 1 or labels.shape[0] not in (total, images_per_severity):
        raise ValueError(
            f"{labels_path}: expected {total} labels (the {images_per_severity} test labels for each of the 5 "
            f"severities) of shape ({total},), got shape {labels.shape}; a folder with another number of images per "
            "severity needs images_per_severity"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{labels_path}: expected integer labels, got dtype {labels.dtype}")
    arrays = {}
    for corruption in corruptions:
        path = root / f"{corruption}.npy"
        images = _load_array(path, hint)
        if images.shape != expected or images.dtype != np.uint8:
            raise ValueError(
                f"{path}: expected a uint8 array of shape {expected} (5 severities x {images_per_severity} images of "
                f"32x32x3, severity 1 first), got {images.dtype} of shape {images.shape}; a folder with another "
                "number of images per severity needs images_per_severity"
            )
        arrays[corruption] = images

    count = images_per_severity
    if max_images_per_severity is not None:
        count = min(max_images_per_severity, images_per_severity)
    for corruption, images in arrays.items():
        for severity in severities:
            start = (severity - 1) * images_per_severity
            label_start = start if labels.shape[0] == total else 0
            yield CorruptedSplit(
                corruption,
                severity,
                images[start : start + count],
                np.asarray(labels[label_start : label_start + count], dtype=np.int64),
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
    corruptions: Sequence[str] = CIFAR10C_CORRUPTIONS,
    severities: Sequence[int] = CIFAR10C_SEVERITIES,
    images_per_severity: int = CIFAR10C_IMAGES_PER_SEVERITY,
    max_images_per_severity: int | None = None,
    accelerator=None,
) -> dict:
    """Accuracy of a classifier on every corruption and severity of CIFAR-10-C, and the benchmark's summary.

    Args:
        model: the classifier, already in eval mode and on `device`; it receives normalised `[B, 3, 32, 32]` pixels.
        root, corruptions, severities, images_per_severity, max_images_per_severity: as in [`load_cifar10c`].
        image_mean, image_std: the normalisation of the model's inputs (its processor's statistics).
        batch_size: images per forward pass.
        device: where the model runs (default: the accelerator's device, else the CPU).
        accelerator: an `accelerate.Accelerator`: each process then classifies an interleaved share of the images and
            the correct counts are summed across processes (every process gets the full result).

    Returns:
        `{"mean_accuracy": the mean over corruptions of the mean over severities, "mean_error": 1 - that,
        "per_corruption": {corruption: mean accuracy over severities}, "per_severity": {corruption: {"1": acc, ...}},
        "corruptions": [...], "severities": [...], "images_per_severity": N}`.
    """
    if device is None:
        device = accelerator.device if accelerator is not None else torch.device("cpu")
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    per_severity: dict[str, dict[str, float]] = {}
    count = None
    for corruption, severity, images, labels in load_cifar10c(
        root, corruptions, severities, images_per_severity, max_images_per_severity
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
        "severities": list(severities),
        "images_per_severity": count,
    }


__all__ = [
    "CIFAR10C_CORRUPTIONS",
    "CIFAR10C_IMAGES_PER_SEVERITY",
    "CIFAR10C_SEVERITIES",
    "CorruptedSplit",
    "evaluate_cifar10c",
    "load_cifar10c",
    "predict_images",
]
