"""Speech data: LibriSpeech in the Hub's parquet schema, audio folders, the transfer sets' archive layouts, batching."""

import logging
import pickle

import numpy as np
import pytest
import soundfile
import torch
from datasets import Dataset, IterableDataset, IterableDatasetDict
from torch.utils.data import DataLoader

from hf_viewmaker.data.speech import SpeechCollator, SpeechExamples, decode_audio, load_speech_splits
from hf_viewmaker.data.speech_transfer import (
    AUDIO_MNIST_TEST_SPEAKERS,
    SPEECH_COMMANDS_V1_WORDS,
    librispeech_speaker_id_split,
    load_audio_mnist,
    load_fluent_speech_commands,
    load_google_speech_commands,
    load_librispeech_speaker_id,
    load_speech_transfer_split,
    load_voxceleb1,
)
from hf_viewmaker.processing import LogMelFeatureExtractor

from helpers import SR, speech_clip, write_librispeech_parquet


@pytest.fixture
def fe():
    return LogMelFeatureExtractor(size=64)


def test_hub_schema_parquet_decodes_with_soundfile(tmp_path, fe):
    clips = write_librispeech_parquet(tmp_path / "train.parquet")
    write_librispeech_parquet(tmp_path / "validation.parquet", speakers=(3,), per_speaker=2, seed=50)
    splits = load_speech_splits(
        train_file=str(tmp_path / "train.parquet"), validation_file=str(tmp_path / "validation.parquet")
    )
    assert {k: len(v) for k, v in splits.items()} == {"train": 9, "validation": 2}
    assert splits["train"].features["audio"].decode is False  # datasets never reaches for torchcodec

    examples = SpeechExamples(splits["train"], label_column="speaker_id")
    assert examples.label_map == {3: 0, 19: 1, 250: 2} and examples.label_names == [3, 19, 250]
    item = examples[4]  # speaker 3, second utterance
    assert item["waveform"].dtype == torch.float32 and item["waveform"].shape == (int(0.35 * SR),)
    np.testing.assert_allclose(item["waveform"].numpy(), clips[4], atol=1 / 2**15)  # FLAC is 16-bit PCM
    assert int(item["labels"]) == 0 and int(item["indices"]) == 4 and int(item["num_skipped"]) == 0

    validation = SpeechExamples(splits["validation"], label_column="speaker_id", label_map=examples.label_map)
    assert [int(validation[i]["labels"]) for i in range(2)] == [0, 0]
    with pytest.raises(ValueError, match=r"labels \[3\]"):
        SpeechExamples(splits["validation"], label_column="speaker_id", label_map={19: 0})
    with pytest.raises(ValueError, match="label_column_name 'speaker'"):
        SpeechExamples(splits["train"], label_column="speaker")


def test_collated_batches_fit_the_log_mel(tmp_path, fe):
    write_librispeech_parquet(tmp_path / "train.parquet")
    examples = SpeechExamples(load_speech_splits(train_file=str(tmp_path / "train.parquet"))["train"])
    loader = DataLoader(examples, batch_size=4, collate_fn=SpeechCollator(fe))
    batch = next(iter(loader))
    assert batch["input_values"].shape == (4, fe.max_length) and batch["input_values"].dtype == torch.float32
    assert batch["lengths"].tolist() == [int((0.2 + 0.15 * u) * SR) for u in (0, 1, 2, 0)]
    assert batch["labels"].tolist() == [1, 1, 1, 0] and batch["indices"].tolist() == [0, 1, 2, 3]
    assert int(batch["num_skipped"]) == 0
    assert batch["input_values"][0, batch["lengths"][0] :].abs().max() == 0  # zero padding after the clip
    features = fe.log_mel(batch["input_values"])  # what the training loop runs on its device
    assert features.shape == (4, 1, 64, 64) and torch.isfinite(features).all()
    direct = fe([examples[i]["waveform"] for i in range(4)], sampling_rate=SR)["input_features"]
    torch.testing.assert_close(features, direct)

    # Training crops: the first or the last max_length samples, a coin flip per clip from the generator.
    small = LogMelFeatureExtractor(size=32, n_fft=256, hop_length=64, max_length=2000)
    items = [examples[i] for i in range(6)]
    a = SpeechCollator(small, training=True, generator=torch.Generator().manual_seed(3))(items)
    b = SpeechCollator(small, training=True, generator=torch.Generator().manual_seed(3))(items)
    torch.testing.assert_close(a["input_values"], b["input_values"])
    for row, item in zip(a["input_values"], items):
        wave = item["waveform"]
        assert torch.equal(row, wave[:2000]) or torch.equal(row, wave[-2000:])
    assert small.log_mel(a["input_values"]).shape == (6, 1, 32, 32)


def test_corrupt_clips_are_named_or_replaced(tmp_path, caplog):
    write_librispeech_parquet(tmp_path / "train.parquet", corrupt=(1, 2))
    dataset = load_speech_splits(train_file=str(tmp_path / "train.parquet"))["train"]
    with pytest.raises(ValueError, match=r"19-100-0001\.flac"):
        SpeechExamples(dataset)[1]

    examples = SpeechExamples(dataset, skip_bad_examples=True)
    with caplog.at_level(logging.WARNING, logger="hf_viewmaker.data.speech"):
        item = examples[1]
    assert int(item["indices"]) == 3 and int(item["num_skipped"]) == 2  # rows 1 and 2 passed over
    assert int(item["labels"]) == examples.label_map[3]
    assert examples.num_skipped == 2 and examples.bad_indices == {1, 2}
    assert "19-100-0001.flac" in caplog.text and "19-100-0002.flac" in caplog.text

    fe = LogMelFeatureExtractor(size=32, n_fft=256, hop_length=64, max_length=2000)
    batch = next(iter(DataLoader(examples, batch_size=4, collate_fn=SpeechCollator(fe))))
    assert batch["input_values"].shape == (4, 2000) and torch.isfinite(batch["input_values"]).all()
    assert batch["indices"].tolist() == [0, 3, 3, 3] and int(batch["num_skipped"]) == 3  # 1 + 2 (row 2 known bad)

    # Too many bad rows in a row: an error, not an endless search.
    write_librispeech_parquet(tmp_path / "all_bad.parquet", speakers=(1,), per_speaker=3, corrupt=(0, 1, 2))
    bad = load_speech_splits(train_file=str(tmp_path / "all_bad.parquet"))["train"]
    with pytest.raises(ValueError, match="consecutive unreadable"):
        SpeechExamples(bad, skip_bad_examples=True)[0]


def test_wrong_sampling_rate_is_always_an_error(tmp_path):
    write_librispeech_parquet(tmp_path / "train.parquet", wrong_rate=(5,))
    dataset = load_speech_splits(train_file=str(tmp_path / "train.parquet"))["train"]
    for skip in (False, True):
        with pytest.raises(ValueError, match=r"3-101-0002\.flac is sampled at 8000 Hz, not the expected 16000 Hz"):
            SpeechExamples(dataset, skip_bad_examples=skip)[5]
    assert SpeechExamples(dataset, sampling_rate=8000)[5]["waveform"].shape == (int(0.5 * SR) // 2,)


def test_hub_style_repository_with_configs_and_concatenated_splits(tmp_path):
    """A dataset repository laid out like `openslr/librispeech_asr`: a README declaring configs and their splits."""
    readme = ["---", "configs:", "- config_name: clean", "  data_files:"]
    for i, split in enumerate(("train.100", "train.360", "validation")):
        (tmp_path / "clean" / split).mkdir(parents=True)
        write_librispeech_parquet(
            tmp_path / "clean" / split / "0000.parquet", speakers=(10 + i,), per_speaker=2, seed=i
        )
        readme += [f"  - split: {split}", f"    path: clean/{split}/*.parquet"]
    (tmp_path / "README.md").write_text("\n".join(readme + ["---", ""]))
    splits = load_speech_splits(
        dataset_name=str(tmp_path), dataset_config_name="clean", train_split="train.100+train.360"
    )
    assert {k: len(v) for k, v in splits.items()} == {"train": 4, "validation": 2}
    assert sorted(set(splits["train"]["speaker_id"])) == [10, 11]
    assert splits["validation"].features["audio"].decode is False
    with pytest.raises(ValueError, match="no split 'train.500'"):
        load_speech_splits(dataset_name=str(tmp_path), dataset_config_name="clean", train_split="train.500")
    with pytest.raises(ValueError, match="needs torchcodec"):
        load_speech_splits(dataset_name="audiofolder")
    with pytest.raises(ValueError, match="exactly one data source"):
        load_speech_splits()


def test_streaming_splits_are_undecoded_iterables(tmp_path):
    write_librispeech_parquet(tmp_path / "train.parquet")
    splits = load_speech_splits(train_file=str(tmp_path / "train.parquet"), streaming=True)
    assert isinstance(splits, IterableDatasetDict) and isinstance(splits["train"], IterableDataset)
    assert splits["train"].features["audio"].decode is False
    assert len(list(splits["train"])) == 9
    with pytest.raises(TypeError, match="streaming dataset is iterable, not indexable"):
        SpeechExamples(splits["train"])
    # A local folder streams too, its file list cut into shards for the processes and workers.
    for k, name in enumerate(("yes", "no")):
        (tmp_path / "folder" / name).mkdir(parents=True)
        soundfile.write(tmp_path / "folder" / name / f"{k}.wav", speech_clip(0.1, k), SR)
    folder = load_speech_splits(train_dir=str(tmp_path / "folder"), streaming=True)["train"]
    assert isinstance(folder, IterableDataset) and folder.num_shards == 2
    assert sorted(row["label"] for row in folder) == [0, 1]


def test_collator_pickles_for_data_loader_workers(fe):
    collate = pickle.loads(pickle.dumps(SpeechCollator(fe, training=True)))
    assert isinstance(collate, SpeechCollator) and collate.training
    assert collate.feature_extractor.max_length == fe.max_length
    batch = collate([{"waveform": torch.ones(100), "labels": torch.tensor(2), "indices": torch.tensor(7)}])
    assert batch["input_values"].shape == (1, fe.max_length) and batch["lengths"].tolist() == [100]
    assert int(batch["num_skipped"]) == 0


def test_audio_folder_with_class_sub_folders(tmp_path):
    for split, names in (("train", ("yes", "no", "up")), ("val", ("no",))):
        for k, name in enumerate(names):
            (tmp_path / split / name).mkdir(parents=True)
            soundfile.write(tmp_path / split / name / f"{k}.wav", speech_clip(0.1, k), SR)
    splits = load_speech_splits(train_dir=str(tmp_path / "train"), validation_dir=str(tmp_path / "val"))
    assert splits["train"].features["label"].names == ["no", "up", "yes"]
    train = SpeechExamples(splits["train"], label_column="label")
    validation = SpeechExamples(splits["validation"], label_column="label")
    assert sorted(int(train[i]["labels"]) for i in range(3)) == [0, 1, 2]
    assert int(validation[0]["labels"]) == 0 and validation.label_names == ["no", "up", "yes"]

    broken = tmp_path / "train" / "up" / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    with pytest.raises(ValueError, match="broken.wav"):
        decode_audio(str(broken))


def test_audio_mnist_archive_layout(tmp_path):
    root = tmp_path / "AudioMNIST"
    for speaker in (1, 5, 26, 48):
        folder = root / "data" / f"{speaker:02d}"
        folder.mkdir(parents=True)
        for digit in (0, 7):
            soundfile.write(folder / f"{digit}_{speaker:02d}_0.wav", speech_clip(0.05, digit, 48000), 48000)
    (root / "data" / "audioMNIST_meta.txt").write_text("{}")  # the repository ships this beside the speakers
    train, test = load_audio_mnist(root, "train"), load_audio_mnist(root, "test")
    assert sorted(set(train["speaker"])) == [1, 48] and sorted(set(test["speaker"])) == [5, 26]
    assert set(test["speaker"]) <= set(AUDIO_MNIST_TEST_SPEAKERS)
    examples = SpeechExamples(test, sampling_rate=48000, label_column="label")
    assert sorted(int(examples[i]["labels"]) for i in range(4)) == [0, 0, 7, 7]
    with pytest.raises(ValueError, match="48000 Hz, not the expected 16000 Hz"):
        SpeechExamples(test, label_column="label")[0]
    fe = LogMelFeatureExtractor.for_dataset("audio_mnist")
    assert fe.sampling_rate == 48000


def test_speech_commands_archive_layout(tmp_path):
    lines = {"validation": [], "testing": []}
    for w, word in enumerate(SPEECH_COMMANDS_V1_WORDS + ("backward",)):  # a v0.02 word, ignored
        (tmp_path / word).mkdir()
        for n in range(3):
            name = f"{w:04x}beef_nohash_{n}.wav"
            soundfile.write(tmp_path / word / name, speech_clip(0.01, n), SR)
            if n == 1:
                lines["validation"].append(f"{word}/{name}")
            if n == 2 and w % 2 == 0:
                lines["testing"].append(f"{word}/{name}")
    (tmp_path / "_background_noise_").mkdir()
    soundfile.write(tmp_path / "_background_noise_" / "white_noise.wav", speech_clip(0.01, 0), SR)
    for kind, entries in lines.items():
        (tmp_path / f"{kind}_list.txt").write_text("\n".join(entries) + "\n")

    parts = {s: load_google_speech_commands(tmp_path, s) for s in ("train", "validation", "test", "train+validation")}
    assert {s: len(d) for s, d in parts.items()} == {"train": 45, "validation": 30, "test": 15, "train+validation": 75}
    files = {s: set(d["audio"]) for s, d in parts.items()}
    assert not files["train"] & files["validation"] and not files["train"] & files["test"]
    assert files["train+validation"] == files["train"] | files["validation"]
    assert not any("backward" in f or "_background_noise_" in f for f in set().union(*files.values()))
    assert parts["test"].features["label"].names == list(SPEECH_COMMANDS_V1_WORDS)
    paper = load_speech_transfer_split("google_speech_commands", tmp_path, "train")
    assert set(paper["audio"]) == files["train+validation"]
    item = SpeechExamples(parts["test"], label_column="label")[1]
    assert SPEECH_COMMANDS_V1_WORDS[int(item["labels"])] == "cat"  # test words: every other one

    (tmp_path / "testing_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="testing_list.txt"):
        load_google_speech_commands(tmp_path, "test")


def test_librispeech_dev_clean_speaker_split():
    ids = [f"{s}-{c}-{u:04d}" for s, c, n in ((84, 121123, 7), (2277, 149896, 5), (174, 50561, 10)) for u in range(n)]

    shuffled = list(np.random.default_rng(0).permutation(ids))  # Hub row order need not be sorted
    dataset = Dataset.from_dict({"id": shuffled, "speaker_id": [int(i.split("-")[0]) for i in shuffled]})
    train = librispeech_speaker_id_split(dataset, "train")
    test = librispeech_speaker_id_split(dataset, "test")
    assert len(train) == 5 + 4 + 8 and len(test) == 2 + 1 + 2  # int(0.8 n) per speaker
    assert not set(train["id"]) & set(test["id"]) and set(train["id"]) | set(test["id"]) == set(ids)
    assert train.features["label"].names == ["84", "174", "2277"]
    assert all(int(i.split("-")[0]) == [84, 174, 2277][lab] for i, lab in zip(train["id"], train["label"]))

    # The documented semantics, spelled out: one RandomState(42), speakers ascending, ids sorted per speaker.
    rs, expected = np.random.RandomState(42), []
    for speaker, chapter, n in ((84, 121123, 7), (174, 50561, 10), (2277, 149896, 5)):
        positions = np.arange(n)
        rs.shuffle(positions)
        expected += [f"{speaker}-{chapter}-{p:04d}" for p in positions[: int(0.8 * n)]]
    assert list(train["id"]) == expected


def test_librispeech_folder_layout_and_other_transfer_sets(tmp_path):
    for speaker, chapter in ((1272, 128104), (652, 130726)):
        folder = tmp_path / "LibriSpeech" / "dev-clean" / str(speaker) / str(chapter)
        folder.mkdir(parents=True)
        lines = []
        for u in range(5):
            soundfile.write(folder / f"{speaker}-{chapter}-{u:04d}.flac", speech_clip(0.05, u), SR)
            lines.append(f"{speaker}-{chapter}-{u:04d} SOME WORDS")
        (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    train = load_librispeech_speaker_id("train", data_dir=tmp_path)
    assert len(train) == 8 and train.features["label"].names == ["652", "1272"]
    item = SpeechExamples(train, label_column="label")[0]
    assert int(item["labels"]) == 0 and item["waveform"].shape == (800,)

    # VoxCeleb1 identification: iden_split.txt + wav/<speaker>/<video>/<n>.wav
    vox = tmp_path / "vox"
    entries = []
    for speaker in ("id10002", "id10001"):
        for n, part in enumerate((1, 2, 3)):
            path = vox / "wav" / speaker / "vid" / f"{n:05d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(path, speech_clip(0.02, n), SR)
            entries.append(f"{part} {speaker}/vid/{n:05d}.wav")
    (vox / "iden_split.txt").write_text("\n".join(entries) + "\n")
    vox_train, vox_test = load_voxceleb1(vox, "train"), load_voxceleb1(vox, "test")
    assert len(vox_train) == 4 and len(vox_test) == 2
    assert vox_test.features["label"].names == ["id10001", "id10002"] and vox_test["label"] == [1, 0]

    # Fluent Speech Commands: data/{train,valid,test}_data.csv with paths relative to the root.
    fluent = tmp_path / "fluent"
    (fluent / "data").mkdir(parents=True)
    (fluent / "wavs").mkdir()
    for part, action in (("train", "activate"), ("valid", "bring"), ("test", "activate")):
        soundfile.write(fluent / "wavs" / f"{part}.wav", speech_clip(0.02, 1), SR)
        (fluent / "data" / f"{part}_data.csv").write_text(
            ",path,speakerId,transcription,action,object,location\n"
            f"0,wavs/{part}.wav,spk1,Turn it on,{action},lights,kitchen\n"
        )
    fluent_train = load_fluent_speech_commands(fluent, "train", caller_intent="action")
    assert fluent_train.features["label"].names == ["activate", "bring"] and fluent_train["label"] == [0, 1]
    with pytest.raises(ValueError, match="caller_intent"):
        load_speech_transfer_split("fluent_speech_commands", fluent, "train")
    assert len(load_speech_transfer_split("fluent_speech_commands", fluent, "test", caller_intent="location")) == 1
    with pytest.raises(ValueError, match="unknown speech transfer set"):
        load_speech_transfer_split("timit", tmp_path, "train")
