"""Write a corrupted copy of an image test set in the CIFAR-10-C layout (docs/method.md §5): Fashion-MNIST-C.

    python tools/make_corrupted_images.py                                     # all 10,000 test images: ~6 minutes on 2 busy cores
    python tools/make_corrupted_images.py --max_images 1000 --corruptions gaussian_noise fog

reads `--input` (a parquet file in the Hub's image schema, default the Fashion-MNIST test set that
`tools/prepare_small_scale_data.py` writes) and writes, under `--output_dir`, one `<corruption>.npy` per corruption
(`[5N, H, W, C]` uint8, severities 1..5 stacked), `labels.npy` (`[5N]`) and `manifest.json` (the corruptions, seed,
layout, and the input's path and SHA-256): the folder `training/linear_eval.py --cifar10c_dir` evaluates. The
corruptions are `hf_viewmaker.evaluation.generated_corruptions` (14 of the benchmark's 15: not frost). Nothing here
is committed: the images keep the data set's licence.
"""

import argparse
from pathlib import Path

import numpy as np
from datasets import Dataset
from watch_dataset import sha256_of

from hf_viewmaker.evaluation.generated_corruptions import CORRUPTIONS, write_corrupted_folder


def read_images(path: Path, image_column: str, label_column: str, max_images: int | None) -> tuple:
    """`[N, H, W, C]` uint8 images (C = 1 for grey images, else 3) and `[N]` labels of a parquet image set."""
    dataset = Dataset.from_parquet(str(path))
    for column in (image_column, label_column):
        if column not in dataset.column_names:
            raise ValueError(f"{path} has no column {column!r} (columns: {', '.join(dataset.column_names)})")
    if max_images is not None:
        dataset = dataset.select(range(min(max_images, len(dataset))))
    pictures = dataset[image_column]
    mode = "L" if all(picture.mode in ("L", "1", "I", "I;16") for picture in pictures) else "RGB"
    arrays = [np.asarray(picture.convert(mode)) for picture in pictures]
    shapes = {array.shape for array in arrays}
    if len(shapes) != 1:
        raise ValueError(f"{path}: images of several sizes {sorted(shapes)}; the layout needs one")
    images = np.stack(arrays)
    return (images[..., None] if mode == "L" else images), np.asarray(dataset[label_column], dtype=np.int64)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=Path("data/small_scale/fashion_mnist/test.parquet"))
    parser.add_argument("--output_dir", type=Path, default=Path("data/small_scale/fashion_mnist_c"))
    parser.add_argument("--image_column", default="image")
    parser.add_argument("--label_column", default="label")
    parser.add_argument("--corruptions", nargs="+", choices=list(CORRUPTIONS), help="default: all 14")
    parser.add_argument("--max_images", type=int, help="only the first N images (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.max_images is not None and args.max_images < 1:
        parser.error(f"--max_images must be positive, got {args.max_images}")
    if not args.input.is_file():
        parser.error(f"--input {args.input} not found (tools/prepare_small_scale_data.py writes the Fashion-MNIST set)")
    images, labels = read_images(args.input, args.image_column, args.label_column, args.max_images)
    source = {"file": str(args.input), "sha256": sha256_of(args.input), "images": len(images)}
    manifest = write_corrupted_folder(images, labels, args.output_dir, args.corruptions, args.seed, source)
    print(
        f"{args.output_dir}: {len(manifest['corruptions'])} corruptions x 5 severities x {len(images)} images of "
        f"{'x'.join(map(str, images.shape[1:]))} ({', '.join(manifest['corruptions'])})"
    )


if __name__ == "__main__":
    main()
