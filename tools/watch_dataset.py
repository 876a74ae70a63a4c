"""The wrist-IMU "watch" dataset of the seglearn wheel, read safely and cut into fixed windows in the `.ts` format.

`seglearn/data/watch_dataset.npy` in the seglearn 1.2.5 wheel on PyPI (BSD-3-Clause, David M. Burns; Burns et al.
2018, "Shoulder physiotherapy exercise recognition: machine learning the inertial signals from a smartwatch",
arXiv:1802.01489) is a `.npy` file holding one pickled Python object: a dict with

* `X`: a list of 140 float arrays ``[T, 6]``, one recording each (`X_labels`: ax ay az wx wy wz, accelerometer and
  gyroscope of a smartwatch on the wrist, 50 Hz per seglearn's `load_watch` docstring: the file has no timestamps);
* `y`: the exercise of each recording, an index into `y_labels` (7 shoulder exercises);
* `subject`: the participant of each recording; `side`: 1 right arm, 0 left arm.

A pickle runs whatever callables it names, so the file is never given to `pickle.load` or
`np.load(allow_pickle=True)`: :func:`read_pickled_npy` checks the `.npy` header with `numpy.lib.format`, then
unpickles the payload with :class:`NumpyOnlyUnpickler`, which resolves only the few numpy callables that numpy's own
pickles of arrays and dtypes need (and a latin-1-only stand-in for `_codecs.encode`, which protocol-2 pickles use
to spell `bytes`) and raises `pickle.UnpicklingError` naming any other global.

The project's `.ts` reader (`hf_viewmaker.data.time_series.read_ts_file`, sktime's format) takes equal-length series
only, so :func:`convert_watch` cuts each recording into windows of ``window`` steps every ``stride`` steps (2 s
every 1 s at 50 Hz by default; the tail shorter than a window is dropped) and writes them, split by subject (every
recording of a subject in one split; subjects 8, 9, 10 in `test` by default), as `Watch_{TRAIN,TEST}.ts`, plus
`windows.csv` (where each window comes from) and `manifest.json` (the source file's hash, the subjects, recordings
and windows per split and class).

    python tools/watch_dataset.py /tmp/seglearn/seglearn/data/watch_dataset.npy --output_dir data/small_scale/watch
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

WATCH_WHEEL = "seglearn==1.2.5"
WATCH_MEMBER = "seglearn/data/watch_dataset.npy"
WATCH_SAMPLE_RATE_HZ = 50
WATCH_CHANNELS = 6
# Participants held out for the test split (ids as the file numbers them); every recording of a subject is in one split.
WATCH_TEST_SUBJECTS = (8, 9, 10)
WATCH_WINDOW = 100  # 2 s at 50 Hz
WATCH_STRIDE = 50  # 1 s at 50 Hz


# ==================================================================================================== safe reading
def _numpy_core_multiarray():
    """`numpy._core.multiarray` (numpy >= 2), else `numpy.core.multiarray`, without touching the deprecated alias."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    return multiarray


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """What protocol-2 pickles call `_codecs.encode` for: a `bytes` object spelled as a latin-1 string."""
    if not isinstance(text, str) or encoding.lower().replace("-", "") not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(
            f"_codecs.encode is allowed only as encode(str, 'latin1'), got ({type(text).__name__}, {encoding!r})"
        )
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], object]:
    multiarray = _numpy_core_multiarray()
    allowed = {}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[module, "_reconstruct"] = multiarray._reconstruct
        allowed[module, "scalar"] = multiarray.scalar
    allowed["numpy", "ndarray"] = np.ndarray
    allowed["numpy", "dtype"] = np.dtype
    allowed["_codecs", "encode"] = _latin1_encode
    return allowed


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler of numpy arrays, dtypes and numpy scalars inside plain containers (dict, list, tuple, str, numbers):
    any other global a pickle names (a class, a function such as `os.system`) raises `pickle.UnpicklingError` before
    it is looked up, so nothing else can run."""

    _allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[module, name]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to unpickle the global {module}.{name}: only numpy arrays, dtypes and scalars in plain "
                "containers are allowed"
            ) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError(f"refusing to unpickle the persistent id {pid!r}")


def restricted_loads(payload: bytes):
    """`pickle.loads` through :class:`NumpyOnlyUnpickler`."""
    return NumpyOnlyUnpickler(io.BytesIO(payload)).load()


def read_pickled_npy(path: str | os.PathLike):
    """The object stored in a `.npy` file written by `np.save(path, obj, allow_pickle=True)` of a non-array object
    (a 0-d object array), read with :class:`NumpyOnlyUnpickler`. Raises ValueError for a file that is not such a
    `.npy`, `pickle.UnpicklingError` for a payload that needs anything but numpy arrays in plain containers."""
    path = Path(path)
    with path.open("rb") as handle:
        try:
            version = npy_format.read_magic(handle)
        except ValueError as error:
            raise ValueError(f"{path}: not a .npy file ({error})") from error
        try:
            if version == (1, 0):
                shape, _, dtype = npy_format.read_array_header_1_0(handle)
            elif version in ((2, 0), (3, 0)):
                shape, _, dtype = npy_format.read_array_header_2_0(handle)
            else:
                raise ValueError(f".npy format version {version} is not supported")
        except ValueError as error:
            raise ValueError(f"{path}: bad .npy header ({error})") from error
        if dtype != np.dtype(object):
            raise ValueError(f"{path}: expected a pickled object (dtype object), the header says dtype {dtype}")
        if shape != ():
            raise ValueError(f"{path}: expected one pickled object (shape ()), the header says shape {shape}")
        payload = handle.read()
    try:
        array = restricted_loads(payload)
    except pickle.UnpicklingError as error:
        raise pickle.UnpicklingError(f"{path}: {error}") from error
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
        raise ValueError(f"{path}: malformed pickle payload ({type(error).__name__}: {error})") from error
    if not isinstance(array, np.ndarray) or array.dtype != object or array.shape != ():
        raise ValueError(f"{path}: the payload is not the 0-d object array the header promises, got {type(array)}")
    return array.item()


def _plain_list(value, name: str, path: Path) -> list:
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise ValueError(f"{path}: {name} must be one-dimensional, got shape {value.shape}")
        return value.tolist()
    if isinstance(value, list | tuple):
        return list(value)
    raise ValueError(f"{path}: {name} must be a list or a 1-d array, got {type(value).__name__}")


def validate_watch(data, path: str | os.PathLike = "watch_dataset.npy") -> dict:
    """Check the watch dict's layout and return it normalised: ``X`` a list of float32 ``[T, 6]`` arrays, ``y``,
    ``subject`` and ``side`` lists of ints of the same length, ``X_labels`` (6) and ``y_labels`` lists of str (the
    latter long enough for every ``y``; made up as ``class<k>`` when missing). Raises ValueError naming the problem."""
    path = Path(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict, got {type(data).__name__}")
    missing = [key for key in ("X", "y", "subject") if key not in data]
    if missing:
        raise ValueError(f"{path}: keys {missing} are missing (found {sorted(map(str, data))})")
    if isinstance(data["X"], np.ndarray) and data["X"].ndim >= 1:
        recordings = list(data["X"])  # an object array of recordings, or equal-length ones stacked [N, T, 6]
    elif isinstance(data["X"], list | tuple):
        recordings = list(data["X"])
    else:
        raise ValueError(f"{path}: X must be a list of [T, {WATCH_CHANNELS}] arrays, got {type(data['X']).__name__}")
    if not recordings:
        raise ValueError(f"{path}: X holds no recordings")
    X = []
    for i, series in enumerate(recordings):
        if not isinstance(series, np.ndarray) or series.dtype.kind not in "fiu":
            raise ValueError(f"{path}: X[{i}] must be a numeric array, got {type(series).__name__}")
        if series.ndim != 2 or series.shape[1] != WATCH_CHANNELS:
            raise ValueError(f"{path}: X[{i}] must have shape [T, {WATCH_CHANNELS}], got {series.shape}")
        if not np.isfinite(series).all():
            raise ValueError(f"{path}: X[{i}] holds {int((~np.isfinite(series)).sum())} non-finite values")
        X.append(series.astype(np.float32))
    columns = {}
    for key in ("y", "subject", "side"):
        if key not in data:
            continue
        values = _plain_list(data[key], key, path)
        if len(values) != len(X):
            raise ValueError(f"{path}: {key} has {len(values)} entries for {len(X)} recordings in X")
        try:
            ints = [int(v) for v in values]
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: {key} must hold integers ({error})") from error
        if any(i != v for i, v in zip(ints, values)):
            raise ValueError(f"{path}: {key} must hold integers, got non-integral values")
        columns[key] = ints
    if min(columns["y"]) < 0:
        raise ValueError(f"{path}: y holds negative class indices")
    y_labels = [str(v) for v in _plain_list(data["y_labels"], "y_labels", path)] if "y_labels" in data else []
    if not y_labels:
        y_labels = [f"class{k}" for k in range(max(columns["y"]) + 1)]
    if max(columns["y"]) >= len(y_labels):
        raise ValueError(f"{path}: y goes up to {max(columns['y'])} but there are only {len(y_labels)} y_labels")
    x_labels = [str(v) for v in _plain_list(data["X_labels"], "X_labels", path)] if "X_labels" in data else []
    if x_labels and len(x_labels) != WATCH_CHANNELS:
        raise ValueError(f"{path}: X_labels has {len(x_labels)} names for {WATCH_CHANNELS} channels")
    return {
        "X": X,
        "y": columns["y"],
        "subject": columns["subject"],
        "side": columns.get("side"),
        "X_labels": x_labels,
        "y_labels": y_labels,
    }


def read_watch(path: str | os.PathLike) -> dict:
    """:func:`read_pickled_npy` then :func:`validate_watch`."""
    return validate_watch(read_pickled_npy(path), path)


# ==================================================================================================== conversion
def window_starts(length: int, window: int, stride: int) -> range:
    """Starts of the windows of ``window`` steps every ``stride`` steps that fit in ``length`` steps (the tail shorter
    than a window is dropped; a recording shorter than one window gives none)."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be positive, got window={window}, stride={stride}")
    return range(0, length - window + 1, stride)


def _ts_lines(windows: Sequence[np.ndarray], labels: Sequence[str], class_names: Sequence[str], comment: Sequence[str]):
    window = windows[0].shape[0]
    yield from (f"# {line}" for line in comment)
    yield "@problemName Watch"
    yield "@timeStamps false"
    yield "@missing false"
    yield "@univariate false"
    yield f"@dimensions {WATCH_CHANNELS}"
    yield "@equalLength true"
    yield f"@seriesLength {window}"
    yield f"@classLabel true {' '.join(class_names)}"
    yield "@data"
    for values, label in zip(windows, labels):
        yield ":".join(",".join(f"{v:.6g}" for v in channel) for channel in values.T) + f":{label}"


def convert_watch(
    data: dict,
    output_dir: str | os.PathLike,
    test_subjects: Sequence[int] = WATCH_TEST_SUBJECTS,
    window: int = WATCH_WINDOW,
    stride: int = WATCH_STRIDE,
    source: dict | None = None,
) -> dict:
    """Write the windows of a :func:`validate_watch` dict, split by subject, to ``output_dir``:

    * `Watch_TRAIN.ts`, `Watch_TEST.ts`: one series ``[6, window]`` per window, labelled with its recording's
      exercise (`y_labels` names, in the file's order);
    * `windows.csv`: one row per window, in the files' order: split, row, recording (index in the source's `X`),
      subject, side, label, start (step in the recording);
    * `manifest.json`: the source (``source``), sampling rate, channels, classes, window and stride, and per split its
      subjects, recordings and windows per class.

    Returns the manifest. Raises ValueError if a test subject is not in the data or a split would be empty.
    """
    output_dir = Path(output_dir)
    subjects = sorted(set(data["subject"]))
    test_subjects = sorted({int(s) for s in test_subjects})
    unknown = sorted(set(test_subjects) - set(subjects))
    if unknown:
        raise ValueError(f"test subjects {unknown} are not in the data (its subjects: {subjects})")
    splits = {"train": [s for s in subjects if s not in test_subjects], "test": test_subjects}
    if not splits["train"] or not splits["test"]:
        raise ValueError(f"both splits need subjects: test {test_subjects} of {subjects}")
    class_names = data["y_labels"]
    bad = [name for name in class_names if not name or any(c.isspace() or c in ":,#@" for c in name)]
    if bad:
        raise ValueError(f"class names {bad} cannot be written as .ts labels (no spaces, ':', ',', '#', '@')")
    output_dir.mkdir(parents=True, exist_ok=True)
    lengths = [int(series.shape[0]) for series in data["X"]]
    comment = [
        "Wrist IMU recordings of shoulder physiotherapy exercises (Burns et al. 2018, arXiv:1802.01489), from",
        "seglearn/data/watch_dataset.npy of the seglearn 1.2.5 wheel (BSD-3-Clause, (c) 2018 David M. Burns),",
        f"cut into windows of {window} steps every {stride} steps (50 Hz); channels {' '.join(data['X_labels'])}.",
    ]
    manifest = {
        "source": source or {},
        "license": "BSD-3-Clause, Copyright (c) 2018 David M. Burns (seglearn)",
        "citation": "Burns et al. 2018, Shoulder physiotherapy exercise recognition: machine learning the inertial "
        "signals from a smartwatch, Physiological Measurement 39(7); arXiv:1802.01489",
        "sampling_rate_hz": WATCH_SAMPLE_RATE_HZ,
        "sampling_rate_note": "as seglearn's load_watch documents it; the file stores no timestamps",
        "channels": data["X_labels"],
        "classes": class_names,
        "window_steps": window,
        "stride_steps": stride,
        "window_seconds": window / WATCH_SAMPLE_RATE_HZ,
        "stride_seconds": stride / WATCH_SAMPLE_RATE_HZ,
        "recordings": len(lengths),
        "recording_steps": {"min": min(lengths), "max": max(lengths), "total": sum(lengths)},
        "subjects": subjects,
        "split_rule": "by subject: every recording of a test subject in test, every other one in train",
        "splits": {},
    }
    rows = ["split,row,recording,subject,side,label,start"]
    for split, split_subjects in splits.items():
        windows, labels, recordings, too_short = [], [], 0, []
        per_class = dict.fromkeys(class_names, 0)
        recordings_per_class = dict.fromkeys(class_names, 0)
        for index, (series, label, subject) in enumerate(zip(data["X"], data["y"], data["subject"])):
            if subject not in split_subjects:
                continue
            recordings += 1
            name = class_names[label]
            recordings_per_class[name] += 1
            starts = window_starts(series.shape[0], window, stride)
            if not starts:
                too_short.append(index)
            side = "" if data["side"] is None else data["side"][index]
            for start in starts:
                rows.append(f"{split},{len(windows)},{index},{subject},{side},{name},{start}")
                windows.append(series[start : start + window])
                labels.append(name)
        if not windows:
            raise ValueError(f"the {split} split (subjects {split_subjects}) has no window of {window} steps")
        file_name = f"Watch_{split.upper()}.ts"
        with (output_dir / file_name).open("w", encoding="utf-8") as handle:
            for line in _ts_lines(windows, labels, class_names, comment):
                handle.write(line + "\n")
        for name in labels:
            per_class[name] += 1
        manifest["splits"][split] = {
            "file": file_name,
            "subjects": split_subjects,
            "recordings": recordings,
            "recordings_per_class": recordings_per_class,
            "recordings_shorter_than_a_window": too_short,
            "windows": len(windows),
            "windows_per_class": per_class,
        }
    (output_dir / "windows.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (output_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def summary_lines(manifest: dict) -> list[str]:
    """One line per split of a :func:`convert_watch` manifest: its file, windows, recordings and subjects."""
    return [
        f"watch/{info['file']}: {info['windows']} windows from {info['recordings']} recordings of subjects "
        f"{info['subjects']}"
        for info in manifest["splits"].values()
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="watch_dataset.npy (as unzipped from the seglearn wheel)")
    parser.add_argument("--output_dir", default="data/small_scale/watch")
    parser.add_argument("--test_subjects", type=int, nargs="+", default=list(WATCH_TEST_SUBJECTS))
    parser.add_argument("--window", type=int, default=WATCH_WINDOW, help="steps per window (50 Hz)")
    parser.add_argument("--stride", type=int, default=WATCH_STRIDE, help="steps between window starts")
    args = parser.parse_args(argv)
    source = {"file": Path(args.source).name, "sha256": sha256_of(args.source)}
    data = read_watch(args.source)
    manifest = convert_watch(data, args.output_dir, args.test_subjects, args.window, args.stride, source)
    print("\n".join(summary_lines(manifest)))


if __name__ == "__main__":
    main()
