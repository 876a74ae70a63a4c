"""Pre-processing saved with the models: the image processor and the paper's log-mel front end for speech."""

from .feature_extraction_logmel import (
    DATASET_NORMALIZATION_STATS,
    HOP_LENGTH_FOR_SIZE,
    MAX_LENGTH,
    LogMelFeatureExtractor,
)
from .image_processing_viewmaker import CIFAR10_MEAN, CIFAR10_STD, ViewmakerImageProcessor

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DATASET_NORMALIZATION_STATS",
    "HOP_LENGTH_FOR_SIZE",
    "LogMelFeatureExtractor",
    "MAX_LENGTH",
    "ViewmakerImageProcessor",
]
