"""Data for the three domains, one module per concern.

* `sources`: where image and speech splits come from (Hub datasets, data files, folders) and the validation-split rule;
* `images`: image splits and examples;
* `speech`: audio decoding without torchcodec, speech splits, examples and the collator;
* `speech_transfer`: the paper's speech transfer sets (docs/method.md §4.3);
* `pamap2`: Pamap2, its subjects, download and class-balanced windows (docs/method.md §4.4);
* `time_series`: whole labelled series from ``.ts`` files, and the filling of missing values;
* `packaged`: the Fashion-MNIST sample shipped with the package;
* `device_images`: image sets held on the training device;
* `streaming`: training data read as it is iterated (``--streaming``), shuffled and resumable exactly;
* `pipelines`: one data pipeline per domain, built from `DataArguments` (and `InputArguments`, or a saved processor).
"""

from .device_images import DeviceImageDataset, DeviceImageLoader
from .images import ImageExamples, load_image_splits
from .packaged import FASHION_MNIST_SAMPLE_FILES, load_fashion_mnist_sample
from .pamap2 import (
    PAMAP2_ACTIVITIES,
    PAMAP2_CHANNEL_NAMES,
    PAMAP2_SPLITS,
    PAMAP2_URL,
    Pamap2Windows,
    download_pamap2,
    read_pamap2_subject,
)
from .pipelines import (
    PACKAGED_DATASETS,
    DataPipeline,
    build_pipeline,
    describe_data,
    expert_views_for,
    fixed_items,
    image_processor,
)
from .speech import SpeechCollator, SpeechExamples, decode_audio, load_audio_folder, load_speech_splits
from .speech_transfer import (
    AUDIO_MNIST_TEST_SPEAKERS,
    LIBRISPEECH_HUB_ID,
    SPEECH_COMMANDS_V1_WORDS,
    SPEECH_TRANSFER_DATASETS,
    librispeech_speaker_id_split,
    load_audio_mnist,
    load_fluent_speech_commands,
    load_google_speech_commands,
    load_librispeech_folder,
    load_librispeech_speaker_id,
    load_speech_transfer_split,
    load_voxceleb1,
)
from .streaming import StreamedExamples, leading_rows
from .time_series import SeriesExamples, fill_missing_values, read_ts_file

__all__ = [
    "AUDIO_MNIST_TEST_SPEAKERS",
    "FASHION_MNIST_SAMPLE_FILES",
    "LIBRISPEECH_HUB_ID",
    "PACKAGED_DATASETS",
    "PAMAP2_ACTIVITIES",
    "PAMAP2_CHANNEL_NAMES",
    "PAMAP2_SPLITS",
    "PAMAP2_URL",
    "SPEECH_COMMANDS_V1_WORDS",
    "SPEECH_TRANSFER_DATASETS",
    "DataPipeline",
    "DeviceImageDataset",
    "DeviceImageLoader",
    "ImageExamples",
    "Pamap2Windows",
    "SeriesExamples",
    "SpeechCollator",
    "SpeechExamples",
    "StreamedExamples",
    "build_pipeline",
    "decode_audio",
    "describe_data",
    "download_pamap2",
    "expert_views_for",
    "fill_missing_values",
    "fixed_items",
    "image_processor",
    "leading_rows",
    "librispeech_speaker_id_split",
    "load_audio_folder",
    "load_audio_mnist",
    "load_fashion_mnist_sample",
    "load_fluent_speech_commands",
    "load_google_speech_commands",
    "load_image_splits",
    "load_librispeech_folder",
    "load_librispeech_speaker_id",
    "load_speech_splits",
    "load_speech_transfer_split",
    "load_voxceleb1",
    "read_pamap2_subject",
    "read_ts_file",
]
