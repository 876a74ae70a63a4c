"""The paper's speech transfer sets (docs/method.md §4.3), read from local folders in their official archive layouts.

:func:`load_speech_transfer_split` gives one split ("train" / "test", as the paper used them) of any of them, with
columns ``audio`` (a path) and ``label``, for `SpeechExamples` (``label_column="label"``); each set also has its own
loader:

* LibriSpeech dev-clean speaker ID (:func:`load_librispeech_speaker_id`: from the Hub, ``openslr/librispeech_asr``, or
  a local ``LibriSpeech/dev-clean``, :func:`load_librispeech_folder`; the split itself is
  :func:`librispeech_speaker_id_split`);
* AudioMNIST (:func:`load_audio_mnist`);
* Google Speech Commands v0.01 (:func:`load_google_speech_commands`);
* VoxCeleb1 identification (:func:`load_voxceleb1`);
* Fluent Speech Commands (:func:`load_fluent_speech_commands`).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, load_dataset

from .sources import undecoded

__all__ = [
    "AUDIO_MNIST_TEST_SPEAKERS",
    "LIBRISPEECH_HUB_ID",
    "SPEECH_COMMANDS_V1_WORDS",
    "SPEECH_TRANSFER_DATASETS",
    "librispeech_speaker_id_split",
    "load_audio_mnist",
    "load_fluent_speech_commands",
    "load_google_speech_commands",
    "load_librispeech_folder",
    "load_librispeech_speaker_id",
    "load_speech_transfer_split",
    "load_voxceleb1",
]

LIBRISPEECH_HUB_ID = "openslr/librispeech_asr"


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _paths_dataset(paths: Sequence[Path], labels: Sequence[int], names: Sequence[str], **extra) -> Dataset:
    data = {"audio": [str(p) for p in paths], "label": list(labels)} | {k: list(v) for k, v in extra.items()}
    return Dataset.from_dict(data).cast_column("label", ClassLabel(names=list(names)))


# ---------------------------------------------------------------- LibriSpeech dev-clean speaker identification
def load_librispeech_folder(data_dir: str | os.PathLike, subset: str = "dev-clean") -> Dataset:
    """A subset of LibriSpeech in its official archive layout, in the Hub's schema.

    ``<data_dir>/LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utterance>.flac`` (``data_dir`` may
    also be the ``LibriSpeech`` folder itself) with ``<speaker>-<chapter>.trans.txt`` transcripts. Columns ``file``,
    ``audio`` (path), ``text``, ``speaker_id``, ``chapter_id``, ``id``; rows sorted by ``id``.
    """
    root = Path(data_dir)
    folder = next((p for p in (root / "LibriSpeech" / subset, root / subset) if p.is_dir()), None)
    if folder is None:
        raise FileNotFoundError(f"LibriSpeech {subset} not found: expected {root / 'LibriSpeech' / subset}")
    files = sorted(folder.glob("*/*/*.flac"), key=lambda p: p.stem)
    if not files:
        raise ValueError(f"no .flac files under {folder}/<speaker>/<chapter>/")
    texts: dict[str, str] = {}
    for transcript in folder.glob("*/*/*.trans.txt"):
        for line in transcript.read_text().splitlines():
            key, _, text = line.partition(" ")
            texts[key] = text
    speakers, chapters = zip(*((int(p.stem.split("-")[0]), int(p.stem.split("-")[1])) for p in files))
    return Dataset.from_dict(
        {
            "file": [str(p) for p in files],
            "audio": [str(p) for p in files],
            "text": [texts.get(p.stem, "") for p in files],
            "speaker_id": list(speakers),
            "chapter_id": list(chapters),
            "id": [p.stem for p in files],
        }
    )


def librispeech_speaker_id_split(
    dataset: Dataset,
    split: str,
    speaker_column: str = "speaker_id",
    id_column: str = "id",
    train_fraction: float = 0.8,
    seed: int = 42,
) -> Dataset:
    """The paper's speaker-ID transfer split of LibriSpeech dev-clean (docs/method.md §4.3), with a ``label`` column.

    What is implemented, exactly (the original ``LibriSpeechTransfer`` on torchaudio's ``LIBRISPEECH``):

    1. utterances are ordered by their id string (``"<speaker>-<chapter>-<utterance>"``, torchaudio's sorted walker);
    2. one ``np.random.RandomState(seed)`` (42) is created; speakers are visited in ascending numeric order, and for
       each, the array of positions of its utterances (in the order of step 1) is shuffled in place with
       ``rs.shuffle``; the first ``int(train_fraction * n)`` go to "train", the rest to "test" (so every speaker is in
       both, 80/20 of its utterances; the generator's state runs on from one speaker to the next);
    3. "train" (or "test") rows come speaker by speaker in that shuffled order; ``label`` is the speaker's rank among
       the sorted speaker ids of the whole set (a `ClassLabel` named by speaker id, identical for both splits).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    ids = list(dataset[id_column])
    order = sorted(range(len(ids)), key=ids.__getitem__)
    speakers = np.array([int(s) for s in dataset[speaker_column]], dtype=np.int64)[order]
    rs = np.random.RandomState(seed)
    chosen: list[int] = []
    for speaker in np.unique(speakers):  # ascending
        positions = np.where(speakers == speaker)[0]
        rs.shuffle(positions)
        cut = int(train_fraction * len(positions))
        chosen.extend((positions[:cut] if split == "train" else positions[cut:]).tolist())
    unique = [int(s) for s in np.unique(speakers)]
    rank = {s: i for i, s in enumerate(unique)}
    rows = [order[p] for p in chosen]
    subset = dataset.select(rows)
    labels = [rank[int(s)] for s in subset[speaker_column]]
    subset = subset.add_column("label", labels)
    return subset.cast_column("label", ClassLabel(names=[str(s) for s in unique]))


def load_librispeech_speaker_id(
    split: str, data_dir: str | os.PathLike | None = None, cache_dir: str | None = None
) -> Dataset:
    """LibriSpeech dev-clean speaker identification (40 speakers, per-speaker 80/20, RandomState 42): "train"/"test".

    From a local ``LibriSpeech/dev-clean`` folder when ``data_dir`` is given, else from the Hub
    (``openslr/librispeech_asr``, config ``clean``, split ``validation``). See :func:`librispeech_speaker_id_split`.
    """
    if data_dir is not None:
        dataset = load_librispeech_folder(data_dir, "dev-clean")
    else:
        dataset = load_dataset(LIBRISPEECH_HUB_ID, "clean", split="validation", cache_dir=cache_dir)
        dataset = undecoded(dataset, "audio")
    return librispeech_speaker_id_split(dataset, split)


# ---------------------------------------------------------------- AudioMNIST
#: The 12 test speakers of the paper's AudioMNIST split (docs/method.md §4.3); the other 48 (36 train + 12 validation
#: in the AudioMNIST split files) form the training set.
AUDIO_MNIST_TEST_SPEAKERS = (26, 52, 60, 18, 32, 42, 5, 13, 22, 33, 45, 51)


def load_audio_mnist(data_dir: str | os.PathLike, split: str) -> Dataset:
    """AudioMNIST (48 kHz, 10 digits) from its repository layout:
    ``<data_dir>/data/<speaker>/<digit>_<speaker>_<index>.wav`` (``data_dir`` may also be the ``data`` folder).
    "test" = the 12 speakers of ``AUDIO_MNIST_TEST_SPEAKERS``, "train" = every other speaker. Columns ``audio``
    (path), ``label`` (the digit), ``speaker``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(data_dir)
    root = root / "data" if (root / "data").is_dir() else root
    files = sorted(root.glob("*/*.wav"))
    if not files:
        raise FileNotFoundError(f"no AudioMNIST files <speaker>/<digit>_<speaker>_<index>.wav under {root}")
    paths, labels, speakers = [], [], []
    for path in files:
        parts = path.stem.split("_")
        if len(parts) != 3 or not all(p.isdigit() for p in parts) or int(parts[1]) != int(path.parent.name):
            raise ValueError(f"{path}: not an AudioMNIST file name <digit>_<speaker>_<index>.wav in its speaker folder")
        speaker = int(parts[1])
        if (speaker in AUDIO_MNIST_TEST_SPEAKERS) == (split == "test"):
            paths.append(path)
            labels.append(int(parts[0]))
            speakers.append(speaker)
    if not paths:
        raise ValueError(f"no AudioMNIST {split} speakers under {root}")
    return _paths_dataset(paths, labels, [str(d) for d in range(10)], speaker=speakers)


# ---------------------------------------------------------------- Google Speech Commands v0.01
#: The 30 words of Speech Commands v0.01, sorted (class ids 0..29); no silence or unknown class (docs/method.md §4.3).
SPEECH_COMMANDS_V1_WORDS = (
    "bed", "bird", "cat", "dog", "down", "eight", "five", "four", "go", "happy", "house", "left", "marvin", "nine",
    "no", "off", "on", "one", "right", "seven", "sheila", "six", "stop", "three", "tree", "two", "up", "wow", "yes",
    "zero",
)  # fmt: skip


def load_google_speech_commands(data_dir: str | os.PathLike, split: str) -> Dataset:
    """Google Speech Commands v0.01 from its archive layout: ``<data_dir>/<word>/<hash>_nohash_<n>.wav`` with
    ``validation_list.txt`` and ``testing_list.txt`` (paths relative to ``data_dir``).

    Splits: "validation" and "test" are the listed files; "train" is every other file of the 30 words (the archive
    ships no training list); "train+validation" is both, the paper's transfer training set. ``_background_noise_``
    and folders of other words (v0.02's extra words) are ignored. Columns ``audio`` (path), ``label``
    (`ClassLabel` of ``SPEECH_COMMANDS_V1_WORDS``), ``speaker`` (the hash).
    """
    if split not in ("train", "validation", "test", "train+validation"):
        raise ValueError(f"split must be train, validation, test or train+validation, got {split!r}")
    root = Path(data_dir)
    validation = set(_read_lines(root / "validation_list.txt"))
    testing = set(_read_lines(root / "testing_list.txt"))
    paths, labels, speakers = [], [], []
    for label, word in enumerate(SPEECH_COMMANDS_V1_WORDS):
        folder = root / word
        if not folder.is_dir():
            raise FileNotFoundError(f"Speech Commands word folder {folder} not found")
        for path in sorted(folder.glob("*.wav")):
            key = f"{word}/{path.name}"
            part = "test" if key in testing else "validation" if key in validation else "train"
            if part == split or (split == "train+validation" and part != "test"):
                paths.append(path)
                labels.append(label)
                speakers.append(path.name.split("_")[0])
    if not paths:
        raise ValueError(f"no Speech Commands {split} files under {root}")
    return _paths_dataset(paths, labels, SPEECH_COMMANDS_V1_WORDS, speaker=speakers)


# ---------------------------------------------------------------- VoxCeleb1 identification
def load_voxceleb1(data_dir: str | os.PathLike, split: str) -> Dataset:
    """VoxCeleb1 speaker identification (1,251 speakers): ``<data_dir>/iden_split.txt`` (lines ``<set> <id>/<video>/
    <n>.wav``) with the audio under ``<data_dir>/wav/``. "train" = sets 1 and 2, "test" = set 3. Labels are the sorted
    speaker ids of the whole list (the original built a map per split; both agree since every speaker has utterances
    in every set)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(data_dir)
    entries = [line.split() for line in _read_lines(root / "iden_split.txt")]
    names = sorted({path.split("/")[0] for _, path in entries})
    keep = {"train": {"1", "2"}, "test": {"3"}}[split]
    rows = [(root / "wav" / path, names.index(path.split("/")[0])) for s, path in entries if s in keep]
    return _paths_dataset([p for p, _ in rows], [label for _, label in rows], names)


# ---------------------------------------------------------------- Fluent Speech Commands
FLUENT_INTENTS = ("action", "object", "location")


def load_fluent_speech_commands(data_dir: str | os.PathLike, split: str, caller_intent: str | None = None) -> Dataset:
    """Fluent Speech Commands: ``<data_dir>/data/{train,valid,test}_data.csv`` (columns ``path``, ``speakerId``,
    ``action``, ``object``, ``location``; paths relative to ``data_dir``). "train" = train + valid, "test" = test.
    ``caller_intent`` picks the label: action (6), object (14) or location (4); class ids are the sorted values over
    all three files."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if caller_intent not in FLUENT_INTENTS:
        raise ValueError(f"caller_intent must be one of {FLUENT_INTENTS}, got {caller_intent!r}")
    root = Path(data_dir)
    tables = {}
    for part in ("train", "valid", "test"):
        path = root / "data" / f"{part}_data.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found")
        with open(path, newline="") as handle:
            tables[part] = list(csv.DictReader(handle))
    names = sorted({row[caller_intent] for rows in tables.values() for row in rows})
    rows = [row for part in (("train", "valid") if split == "train" else ("test",)) for row in tables[part]]
    return _paths_dataset(
        [root / row["path"] for row in rows],
        [names.index(row[caller_intent]) for row in rows],
        names,
        speaker=[row["speakerId"] for row in rows],
    )


def _librispeech_speaker_id_transfer(data_dir, split, **kwargs) -> Dataset:
    return load_librispeech_speaker_id(split, data_dir, **kwargs)


def _speech_commands_transfer(data_dir, split, **kwargs) -> Dataset:
    return load_google_speech_commands(data_dir, "train+validation" if split == "train" else split, **kwargs)


#: Transfer sets of docs/method.md §4.3: name -> (loader(data_dir, split, **kwargs), key of
#: ``DATASET_NORMALIZATION_STATS``). Splits are "train" and "test" as the paper used them.
SPEECH_TRANSFER_DATASETS: Mapping[str, tuple[Callable[..., Dataset], str]] = {
    "librispeech_speaker_id": (_librispeech_speaker_id_transfer, "librispeech"),
    "audio_mnist": (load_audio_mnist, "audio_mnist"),
    "google_speech_commands": (_speech_commands_transfer, "google_speech_commands"),
    "voxceleb1": (load_voxceleb1, "voxceleb1"),
    "fluent_speech_commands": (load_fluent_speech_commands, "fluent_speech_commands"),
}


def load_speech_transfer_split(name: str, data_dir: str | os.PathLike | None, split: str, **kwargs) -> Dataset:
    """One split ("train" / "test") of a speech transfer set of the paper, with columns ``audio`` and ``label``.

    ``name``: librispeech_speaker_id (``data_dir`` None = from the Hub), audio_mnist, google_speech_commands (its
    "train" is the paper's training_list + validation_list), voxceleb1, fluent_speech_commands (needs
    ``caller_intent=``). Featurize with ``LogMelFeatureExtractor.for_dataset(<the matching statistics key>)``, whose
    sampling rate is the one to give `SpeechExamples` (48 kHz for AudioMNIST).
    """
    if name not in SPEECH_TRANSFER_DATASETS:
        raise ValueError(f"unknown speech transfer set {name!r}; known: {sorted(SPEECH_TRANSFER_DATASETS)}")
    if data_dir is None and name != "librispeech_speaker_id":
        raise ValueError(f"{name} is read from a local folder in its official layout: pass data_dir")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return SPEECH_TRANSFER_DATASETS[name][0](data_dir, split, **kwargs)
