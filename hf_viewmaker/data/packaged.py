"""Real data that ships inside the package, so that demos and the quickstart run offline."""

from pathlib import Path

from datasets import DatasetDict, load_dataset

_ASSETS = Path(__file__).resolve().parents[1] / "assets"

# 4,000 training and 1,000 test images of Fashion-MNIST (Zalando SE, MIT licence), the first of each official split,
# as parquet in the Hub's image schema (`image`, `label`); made by tools/make_fashion_mnist_sample.py.
FASHION_MNIST_SAMPLE_FILES = {
    "train": str(_ASSETS / "fashion_mnist" / "train.parquet"),
    "test": str(_ASSETS / "fashion_mnist" / "test.parquet"),
}


def load_fashion_mnist_sample() -> DatasetDict:
    """The packaged Fashion-MNIST sample as a `DatasetDict` with `train` and `test` splits (28x28 greyscale)."""
    return load_dataset("parquet", data_files=FASHION_MNIST_SAMPLE_FILES)
