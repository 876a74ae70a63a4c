"""Write the small Fashion-MNIST sample that ships with hf_viewmaker (hf_viewmaker/assets/fashion_mnist/).

Source: Debian's `dataset-fashion-mnist` package (Zalando SE, MIT/Expat licence), installed at
/usr/share/datasets/fashion-mnist/. The sample is the first N images of each official split, stored as parquet in
the Hub's image-dataset schema (`image` as PNG bytes, `label` as a ClassLabel), so `datasets` loads it with the
`parquet` builder exactly like a Hub dataset.

    apt-get install dataset-fashion-mnist
    python tools/make_fashion_mnist_sample.py --train 4000 --test 1000
"""

import argparse
import gzip
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, Features, Image

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SOURCE = Path("/usr/share/datasets/fashion-mnist")
TARGET = Path(__file__).resolve().parents[1] / "hf_viewmaker" / "assets" / "fashion_mnist"


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format): big-endian header of dimension sizes, then uint8 data."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--test", type=int, default=1000)
    args = parser.parse_args()
    features = Features({"image": Image(), "label": ClassLabel(names=CLASSES)})
    TARGET.mkdir(parents=True, exist_ok=True)
    for split, prefix, count in (("train", "train", args.train), ("test", "t10k", args.test)):
        images = read_idx(SOURCE / f"{prefix}-images-idx3-ubyte.gz")[:count]
        labels = read_idx(SOURCE / f"{prefix}-labels-idx1-ubyte.gz")[:count]
        dataset = Dataset.from_dict({"image": list(images), "label": labels.tolist()}, features=features)
        dataset.to_parquet(TARGET / f"{split}.parquet")
        print(split, len(dataset), (TARGET / f"{split}.parquet").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
