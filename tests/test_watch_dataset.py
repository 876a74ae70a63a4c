"""tools/watch_dataset.py: seglearn's wrist-IMU watch dataset read with a numpy-only unpickler, windowed into `.ts`
files split by subject; and the `watch` part of tools/prepare_small_scale_data.py (offline: nothing is downloaded)."""

import csv
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from hf_viewmaker.data.time_series import SeriesExamples

from helpers import load_script

REPO_ROOT = Path(__file__).resolve().parents[1]
watch = load_script(REPO_ROOT / "tools" / "watch_dataset.py")

CLASSES = ["PEN", "ABD", "FEL"]
# subject -> lengths (steps) of its recordings, one per class in CLASSES' order
LENGTHS = {1: [250, 130, 100], 2: [199, 300, 151], 3: [120, 260, 101], 4: [175, 110, 330]}


def synthetic_watch() -> dict:
    """A dict in the layout of seglearn's watch_dataset.npy; each value encodes its recording, step and channel."""
    X, y, subject, side = [], [], [], []
    for s, lengths in LENGTHS.items():
        for label, length in enumerate(lengths):
            steps = np.arange(length, dtype=np.float64)[:, None]
            X.append(len(X) * 1000 + steps + np.arange(6) / 10)
            y.append(label)
            subject.append(s)
            side.append(float(label % 2))
    return {
        "X": X,
        "y_labels": CLASSES,
        "y": np.asarray(y),
        "subject": np.asarray(subject),
        "side": np.asarray(side),
        "X_labels": ["ax", "ay", "az", "wx", "wy", "wz"],
    }


def write_pickled_npy(path: Path, obj, protocol: int = 3) -> Path:
    """A `.npy` of one pickled object, as `np.save(allow_pickle=True)` writes it, at a chosen pickle protocol."""
    with path.open("wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False, "shape": ()})
        array = np.empty((), dtype=object)
        array[()] = obj
        pickle.dump(array, handle, protocol=protocol)
    return path


class RunsACommand:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_reads_what_np_save_writes(tmp_path, protocol):
    """Protocol 2 (the real file's) spells array bytes with `_codecs.encode`, 3 and 4 (np.save's) do not."""
    data = synthetic_watch()
    path = tmp_path / "watch.npy"
    if protocol == 3:
        np.save(path, data, allow_pickle=True)
    else:
        write_pickled_npy(path, data, protocol)
    read = watch.read_watch(path)
    assert read["y_labels"] == CLASSES and read["X_labels"][3] == "wx"
    assert read["y"] == data["y"].tolist() and read["subject"] == data["subject"].tolist()
    assert read["side"] == [int(v) for v in data["side"]]
    assert len(read["X"]) == 12 and all(x.dtype == np.float32 and x.shape[1] == 6 for x in read["X"])
    np.testing.assert_array_equal(read["X"][4], data["X"][4].astype(np.float32))


def test_conversion_windows_split_by_subject_and_manifest(tmp_path):
    data = synthetic_watch()
    np.save(tmp_path / "watch.npy", data, allow_pickle=True)
    out = tmp_path / "watch"
    watch.main([str(tmp_path / "watch.npy"), "--output_dir", str(out), "--test_subjects", "2", "4"])
    manifest = json.loads((out / "manifest.json").read_text())
    train = SeriesExamples(out / "Watch_TRAIN.ts")
    test = SeriesExamples(out / "Watch_TEST.ts", label_names=train.label_names)
    assert train.label_names == CLASSES and train.values.shape[1:] == (6, 100) and test.values.shape[1:] == (6, 100)

    def windows(length):  # 2 s windows every 1 s at 50 Hz
        return (length - 100) // 50 + 1

    expected = {
        split: {name: sum(windows(LENGTHS[s][k]) for s in subjects) for k, name in enumerate(CLASSES)}
        for split, subjects in (("train", [1, 3]), ("test", [2, 4]))
    }
    assert manifest["splits"]["train"]["subjects"] == [1, 3] and manifest["splits"]["test"]["subjects"] == [2, 4]
    assert manifest["splits"]["train"]["windows_per_class"] == expected["train"]
    assert manifest["splits"]["test"]["windows_per_class"] == expected["test"]
    assert len(train) == sum(expected["train"].values()) == manifest["splits"]["train"]["windows"]
    assert len(test) == sum(expected["test"].values()) == manifest["splits"]["test"]["windows"]
    assert manifest["splits"]["test"]["recordings"] == 6 and manifest["recordings"] == 12
    assert manifest["window_steps"] == 100 and manifest["stride_steps"] == 50 and manifest["sampling_rate_hz"] == 50
    assert manifest["recording_steps"] == {"min": 100, "max": 330, "total": sum(map(sum, LENGTHS.values()))}

    rows = list(csv.DictReader((out / "windows.csv").open()))
    assert len(rows) == len(train) + len(test)
    subjects = {split: {int(r["subject"]) for r in rows if r["split"] == split} for split in ("train", "test")}
    assert subjects == {"train": {1, 3}, "test": {2, 4}}  # no subject in both splits
    for row in rows:  # every window is its recording's slice [start, start + 100), channels first
        split = train if row["split"] == "train" else test
        index, recording, start = int(row["row"]), int(row["recording"]), int(row["start"])
        source = data["X"][recording][start : start + 100].T
        np.testing.assert_allclose(split.values[index].numpy(), source, rtol=1e-5)
        assert split.label_names[int(split.labels[index])] == row["label"] == CLASSES[data["y"][recording]]
        assert int(row["subject"]) == data["subject"][recording]


def test_refuses_a_pickle_that_runs_a_command(tmp_path):
    marker = tmp_path / "executed"
    path = write_pickled_npy(tmp_path / "evil.npy", {"X": [RunsACommand(f"touch {marker}")], "y": [0], "subject": [1]})
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to unpickle the global (posix|nt|os)\.system"):
        watch.read_watch(path)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        watch.restricted_loads(pickle.dumps(RunsACommand(f"touch {marker}")))
    assert not marker.exists()
    # the same payload really runs the command through a plain unpickler: the refusal above is what prevented it
    pickle.loads(pickle.dumps(RunsACommand(f"touch {marker}")))
    assert marker.exists()


def test_refuses_other_globals():
    for obj in (print, Path("x"), {"a": np.float32}):
        with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle the global"):
            watch.restricted_loads(pickle.dumps(obj))
    assert watch.restricted_loads(pickle.dumps({"a": [np.arange(3), np.float64(2.5), ("s", 1)]}))["a"][1] == 2.5


def test_clear_errors(tmp_path):
    np.save(tmp_path / "floats.npy", np.zeros((3, 6)))
    with pytest.raises(ValueError, match="expected a pickled object"):
        watch.read_pickled_npy(tmp_path / "floats.npy")
    (tmp_path / "text.npy").write_text("not numpy")
    with pytest.raises(ValueError, match="not a .npy file"):
        watch.read_pickled_npy(tmp_path / "text.npy")
    good = synthetic_watch()
    for change, message in (
        ({"X": [np.zeros((200, 3))] * 12}, r"must have shape \[T, 6\]"),
        ({"y": good["y"][:-1]}, "y has 11 entries for 12 recordings"),
        ({"subject": good["subject"][:5]}, "subject has 5 entries"),
        ({"y": good["y"] + 5}, "only 3 y_labels"),
        ({"X": [x.astype(str) for x in good["X"]]}, "must be a numeric array"),
    ):
        with pytest.raises(ValueError, match=message):
            watch.validate_watch({**good, **change})
    with pytest.raises(ValueError, match="keys"):
        watch.validate_watch({"X": good["X"]})
    with pytest.raises(ValueError, match=r"test subjects \[7\] are not in the data"):
        watch.convert_watch(watch.validate_watch(good), tmp_path / "out", test_subjects=[7])


def test_prepare_uses_the_kept_source_without_downloading(tmp_path, monkeypatch):
    """`prepare_small_scale_data.py --only watch` converts watch/source/watch_dataset.npy when its hash is the
    expected one, and fetches the wheel only otherwise."""
    monkeypatch.syspath_prepend(str(REPO_ROOT / "tools"))
    prepare = load_script(REPO_ROOT / "tools" / "prepare_small_scale_data.py")
    source = tmp_path / "watch" / "source" / "watch_dataset.npy"
    source.parent.mkdir(parents=True)
    np.save(source, synthetic_watch(), allow_pickle=True)
    monkeypatch.setattr(prepare, "WATCH_SHA256", watch.sha256_of(source))
    monkeypatch.setattr(prepare, "fetch_watch_source", lambda path: pytest.fail("fetched although the source is kept"))
    monkeypatch.setattr(
        prepare, "convert_watch", lambda data, target, **kwargs: watch.convert_watch(data, target, [3, 4], **kwargs)
    )
    prepare.write_watch(tmp_path / "watch")
    manifest = json.loads((tmp_path / "watch" / "manifest.json").read_text())
    assert manifest["source"]["sha256"] == watch.sha256_of(source) and manifest["source"]["wheel"] == "seglearn==1.2.5"
    assert manifest["splits"]["test"]["subjects"] == [3, 4]

    fetched = []
    monkeypatch.setattr(prepare, "WATCH_SHA256", "0" * 64)  # a kept file of another hash is fetched again, then refused
    monkeypatch.setattr(prepare, "fetch_watch_source", fetched.append)
    with pytest.raises(ValueError, match="expected 0000"):
        prepare.write_watch(tmp_path / "watch")
    assert fetched == [source]
