from .images import ImageExamples, load_image_splits
from .packaged import FASHION_MNIST_SAMPLE_FILES, load_fashion_mnist_sample

__all__ = ["FASHION_MNIST_SAMPLE_FILES", "ImageExamples", "load_fashion_mnist_sample", "load_image_splits"]
