"""--streaming: training examples read as they are iterated (hf_viewmaker.data.streaming), from local files in the
real schemas, split between processes and workers, and resumed exactly, down to a 2-process run killed and resumed."""

import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from datasets import load_dataset
from PIL import Image
from test_pretrain import ACCELERATE_CONFIGS, ENV, REPO_ROOT, SCRIPT, TINY, _run, _weights
from torchdata.stateful_dataloader import StatefulDataLoader

from hf_viewmaker.arguments import DataArguments, InputArguments
from hf_viewmaker.data import StreamedExamples, build_pipeline, leading_rows

from helpers import load_script, run_in_process, write_librispeech_parquet

pretrain = load_script(SCRIPT)


def _image_parquet_shards(folder, shards=4, per_shard=12):
    """Parquet shards in the Hub's image schema (`image` {bytes, path}, `label`); each image's label is its row."""
    folder.mkdir()
    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])), ("label", pa.int64())])
    for shard in range(shards):
        images, labels = [], []
        for row in range(shard * per_shard, (shard + 1) * per_shard):
            buffer = io.BytesIO()
            Image.fromarray(np.full((8, 8), row, dtype=np.uint8)).save(buffer, format="PNG")
            images.append({"bytes": buffer.getvalue(), "path": f"{row}.png"})
            labels.append(row)
        pq.write_table(pa.table({"image": images, "label": labels}, schema=schema), folder / f"{shard}.parquet")
    return sorted(str(path) for path in folder.glob("*.parquet"))


def _rows(tmp_path):
    files = _image_parquet_shards(tmp_path / "shards")
    return load_dataset("parquet", data_files=files, split="train", streaming=True)


def _labels_of(batches):
    return [int(label) for batch in batches for label in batch["row"]]


def _stream(source, buffer, process=0, processes=2):
    examples = StreamedExamples(source, lambda row: {"row": torch.tensor(row["label"])}, buffer, seed=3)
    return examples.for_process(process, processes)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_stream_yields_exactly_what_an_uninterrupted_one_would(tmp_path, workers):
    source = _rows(tmp_path)  # 48 rows in 4 shards: 24 per process, so 12 batches of 4 cross two epochs
    for process in (0, 1):
        loader = StatefulDataLoader(_stream(source, 10, process), batch_size=4, num_workers=workers)
        batches = iter(loader)
        uninterrupted = _labels_of(next(batches) for _ in range(12))
        for stop in (1, 5, 7):
            loader = StatefulDataLoader(_stream(source, 10, process), batch_size=4, num_workers=workers)
            batches = iter(loader)
            before = _labels_of(next(batches) for _ in range(stop))
            state = json.loads(json.dumps(loader.state_dict()))  # what a checkpoint holds
            resumed = StatefulDataLoader(_stream(source, 10, process), batch_size=4, num_workers=workers)
            resumed.load_state_dict(state)
            after = iter(resumed)
            assert before + _labels_of(next(after) for _ in range(12 - stop)) == uninterrupted, (process, stop)
        # Each epoch yields each of this process's rows once, shuffled, and the next epoch in another order.
        first, second = uninterrupted[:24], uninterrupted[24:]
        assert sorted(first) == sorted(second) and len(set(first)) == 24 and first != second
        assert first != sorted(first)


def test_processes_read_disjoint_parts_that_cover_the_stream(tmp_path):
    source = _rows(tmp_path)
    # 24 rows per process: one epoch is 6 batches of 4 (the stream is endless).
    parts = [_labels_of(itertools.islice(StatefulDataLoader(_stream(source, 1, p), batch_size=4), 6)) for p in (0, 1)]
    assert not set(parts[0]) & set(parts[1]) and sorted(parts[0] + parts[1]) == list(range(48))


def test_leading_rows_are_the_streams_first_rows_with_its_features(tmp_path):
    source = _rows(tmp_path)
    head = leading_rows(source, 5)
    assert head["label"] == [0, 1, 2, 3, 4] and head.features == source.features


def test_an_unreadable_streamed_image_is_named_or_skipped_with_a_count(tmp_path):
    files = _image_parquet_shards(tmp_path / "shards", shards=1, per_shard=6)
    table = pq.read_table(files[0]).to_pylist()
    table[2]["image"] = {"bytes": b"not an image", "path": "broken.png"}
    pq.write_table(pa.Table.from_pylist(table, schema=pq.read_schema(files[0])), files[0])
    data = {"train_file": files[0], "streaming": True, "shuffle_buffer_size": 0, "label_column_name": "label"}
    inputs = InputArguments(image_size=8, num_channels=1, normalize_mean=[0.5], normalize_std=[0.5])
    stream = build_pipeline(DataArguments(**data), inputs).train
    with pytest.raises(ValueError, match="broken.png"):
        list(zip(range(6), stream))
    stream = build_pipeline(DataArguments(**data, skip_bad_examples=True), inputs).train
    items = [item for _, item in zip(range(5), stream)]
    assert [int(item["num_skipped"]) for item in items] == [0, 0, 1, 0, 0]
    assert all(item["pixel_values"].shape == (1, 8, 8) for item in items)


def test_speech_streams_from_librispeech_schema_files_and_audio_folders(tmp_path):
    write_librispeech_parquet(tmp_path / "train.parquet", speakers=(19, 3, 250), per_speaker=2)
    write_librispeech_parquet(tmp_path / "validation.parquet", speakers=(3, 7), per_speaker=1, seed=40)
    data = DataArguments(
        domain="audio",
        train_file=str(tmp_path / "train.parquet"),
        validation_file=str(tmp_path / "validation.parquet"),
        label_column_name="speaker_id",
        streaming=True,
        shuffle_buffer_size=4,
    )
    pipeline = build_pipeline(data, InputArguments(image_size=32, audio_normalization="librispeech"))
    assert pipeline.streaming and len(pipeline.validation) == 2
    clips = [item["waveform"] for _, item in zip(range(6), pipeline.train)]
    assert all(clip.dtype == torch.float32 and clip.ndim == 1 for clip in clips)
    # The bank's speakers get ids after the validation split's: one label map for the kNN monitor.
    bank = pipeline.leading_train_examples(6)
    assert len(bank) == 6 and bank.label_map == {3: 0, 7: 1, 19: 2, 250: 3}
    batch = pipeline.train_collate([pipeline.validation[0], pipeline.validation[1]])
    assert batch["input_values"].shape[0] == 2 and batch["labels"].tolist() == [0, 1]

    # Two processes on one file (one shard): each keeps every other row, together all of them, decoded.
    parts = [
        [float(item["waveform"].sum()) for _, item in zip(range(3), pipeline.train.for_process(p, 2))] for p in (0, 1)
    ]
    clips = [float(item["waveform"].sum()) for _, item in zip(range(6), pipeline.train.for_process(0, 1))]
    assert len(set(clips)) == 6 and sorted(parts[0] + parts[1]) == sorted(clips)

    # A clip at another sampling rate is a mistake of the configuration, never skipped as unreadable.
    write_librispeech_parquet(tmp_path / "train.parquet", speakers=(19,), per_speaker=2, wrong_rate=(1,))
    data.skip_bad_examples, data.shuffle_buffer_size = True, 0
    stream = build_pipeline(data, InputArguments(image_size=32, audio_normalization="librispeech")).train
    with pytest.raises(ValueError, match="8000 Hz, not the expected 16000 Hz"):
        list(zip(range(2), stream))


def test_streaming_refuses_what_a_stream_cannot_do(capsys):
    for extra, named in [
        ([], "--max_steps"),
        (["--max_steps", "2", "--objective", "instdisc"], "--objective simclr"),
        (["--max_steps", "2", "--viewmaker_freeze_epoch", "3"], "--viewmaker_freeze_epoch"),
    ]:
        with pytest.raises(SystemExit):
            pretrain.parse_args([*TINY, "--streaming", "true", *extra])
        assert named in capsys.readouterr().err, extra
    with pytest.raises(ValueError, match="sensor"):
        DataArguments(domain="sensor", streaming=True)


def test_a_resumed_stream_refuses_another_worker_count(tmp_path):
    run = pretrain.parse_args([*TINY, "--streaming", "true", "--max_steps", "2"])
    saved = pretrain.parse_args([*TINY, "--streaming", "true", "--max_steps", "2", "--dataloader_num_workers", "2"])
    assert run.changes_from(saved) == ["--dataloader_num_workers 2 -> 0"]


def test_streamed_pretraining_in_process_saves_models_and_a_knn_result(tmp_path):
    out = tmp_path / "run"
    run_in_process(pretrain.main, [*TINY, "--streaming", "true", "--max_steps", "3", "--output_dir", str(out)])
    results = json.loads((out / "train_results.json").read_text())
    assert results["completed_steps"] == 3 and 0.0 <= results["knn_accuracy"] <= 1.0
    assert results["data"]["streaming"] and results["data"]["num_train_examples"] is None
    assert results["data"]["num_validation_examples"] == 32


def test_a_streamed_two_process_run_killed_and_resumed_ends_as_an_uninterrupted_one(tmp_path):
    # 64 streamed examples, 32 per process, batches of 8: the stream starts its next epochs at steps 5 and 9.
    args = [
        "--streaming", "true", "--shuffle_buffer_size", "16", "--per_device_train_batch_size", "8",
        "--max_steps", "12", "--checkpointing_steps", "1", "--checkpoints_total_limit", "2", "--logging_steps", "1",
    ]  # fmt: skip
    launcher = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file",
        str(ACCELERATE_CONFIGS / "cpu_two_processes.yaml"), str(SCRIPT), *TINY, *args,
    ]  # fmt: skip
    _run([*launcher, "--output_dir", str(tmp_path / "uninterrupted")])

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [*launcher, "--output_dir", str(killed)],
        env=ENV,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not any((killed / "checkpoints").glob("step_[3-9]")):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the launcher and both training processes
    process.wait()
    saved = [int(path.name.removeprefix("step_")) for path in (killed / "checkpoints").glob("step_*")]
    assert max(saved) < 12 and not (killed / "encoder").exists(), "the run finished before the kill"
    assert {path.name for path in (killed / "checkpoints" / f"step_{max(saved)}").glob("process_state_*")} == {
        "process_state_0.json",
        "process_state_1.json",
    }

    _run([*launcher, "--output_dir", str(killed), "--resume_from_checkpoint", "latest"])
    results = [
        json.loads((folder / "train_results.json").read_text()) for folder in (tmp_path / "uninterrupted", killed)
    ]
    assert results[0]["encoder_loss_history"] == results[1]["encoder_loss_history"]
    assert results[1]["num_processes"] == 2 and len(set(results[1]["replica_parameter_checksums"])) == 1
    expected, resumed = _weights(tmp_path / "uninterrupted"), _weights(killed)
    assert expected.keys() == resumed.keys()
    for name in expected:
        assert torch.equal(expected[name], resumed[name]), name


def test_a_hub_style_repository_streams_its_concatenated_splits_shard_by_shard(tmp_path):
    # Laid out like openslr/librispeech_asr (a README declaring configs, parquet shards per split), as the 960 h
    # recipes read it: "train.100+train.360" streams both splits' shards, split between two processes by shard.
    readme = ["---", "configs:", "- config_name: clean", "  data_files:"]
    for i, split in enumerate(("train.100", "train.360")):
        for shard in range(2):
            path = tmp_path / "clean" / split / f"{shard:04d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_librispeech_parquet(path, speakers=(10 * (i + 1) + shard,), per_speaker=2, seed=2 * i + shard)
        readme += [f"  - split: {split}", f"    path: clean/{split}/*.parquet"]
    (tmp_path / "README.md").write_text("\n".join(readme + ["---", ""]))
    data = DataArguments(
        domain="audio",
        dataset_name=str(tmp_path),
        dataset_config_name="clean",
        train_split="train.100+train.360",
        validation_split="train.100",  # as the 960 h recipes: its leading rows are the kNN queries
        max_eval_samples=2,
        label_column_name="speaker_id",
        streaming=True,
        shuffle_buffer_size=4,
    )
    pipeline = build_pipeline(data, InputArguments(image_size=32, audio_normalization="librispeech"))
    stream = pipeline.train
    assert stream.source.num_shards == 4 and len(pipeline.validation) == 2
    parts = [{float(item["waveform"].sum()) for _, item in zip(range(4), stream.for_process(p, 2))} for p in (0, 1)]
    everything = {float(item["waveform"].sum()) for _, item in zip(range(8), stream.for_process(0, 1))}
    assert len(everything) == 8 and not parts[0] & parts[1] and parts[0] | parts[1] == everything
