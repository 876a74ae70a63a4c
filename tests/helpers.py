"""Helpers shared by several test modules."""

import importlib.util
import io
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile
import torch
from datasets import Audio, Features, Value
from torch import nn

SR = 16000
# The quickstart's networks shrunk so that a step takes milliseconds: a 2-stage encoder 8-16 wide with a 16-d
# projection and a one-block viewmaker (TINY_ENCODERS), on 16x16 inputs (TINY_MODEL).
TINY_ENCODERS = [
    "--encoder_depths", "1", "1", "--encoder_hidden_sizes", "8", "16", "--encoder_stem_channels", "8",
    "--embedding_dim", "16", "--num_res_blocks", "1",
]  # fmt: skip
TINY_MODEL = ["--image_size", "16", *TINY_ENCODERS]


def randomise_batch_norms(model: nn.Module, seed: int = 0) -> None:
    """Non-default BatchNorm statistics and affine parameters, so that a lost, reset or mis-mapped buffer shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
                module.weight.normal_(generator=generator)
                module.bias.normal_(generator=generator)
                module.num_batches_tracked.fill_(7)


# The schema of `openslr/librispeech_asr` on the Hub (its parquet files carry these features in their metadata).
LIBRISPEECH_FEATURES = Features(
    {
        "file": Value("string"),
        "audio": Audio(sampling_rate=SR),
        "text": Value("string"),
        "speaker_id": Value("int64"),
        "chapter_id": Value("int64"),
        "id": Value("string"),
    }
)


def speech_clip(seconds: float, seed: int, sr: int = SR) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def encode_audio(array: np.ndarray, sr: int = SR, fmt: str = "FLAC") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, array, sr, format=fmt)
    return buffer.getvalue()


def write_librispeech_parquet(path, speakers=(19, 3, 250), per_speaker=3, corrupt=(), wrong_rate=(), seed=0):
    """A parquet file in the Hub LibriSpeech schema: FLAC bytes, ids "<speaker>-<chapter>-<utt>". Rows listed in
    `corrupt` hold broken bytes, rows in `wrong_rate` are encoded at 8 kHz."""
    rows = {name: [] for name in LIBRISPEECH_FEATURES}
    clips = []
    for s, speaker in enumerate(speakers):
        for u in range(per_speaker):
            row = len(rows["id"])
            key = f"{speaker}-{100 + s}-{u:04d}"
            clip = speech_clip(0.2 + 0.15 * u, seed + row)
            clips.append(clip)
            if row in corrupt:
                data = b"fLaC" + bytes(range(40))  # a FLAC signature and garbage
            elif row in wrong_rate:
                data = encode_audio(clip[::2], 8000)
            else:
                data = encode_audio(clip)
            rows["file"].append(f"{key}.flac")
            rows["audio"].append({"bytes": data, "path": f"{key}.flac"})
            rows["text"].append("HELLO WORLD")
            rows["speaker_id"].append(speaker)
            rows["chapter_id"].append(100 + s)
            rows["id"].append(key)
    pq.write_table(pa.Table.from_pydict(rows, schema=LIBRISPEECH_FEATURES.arrow_schema), path)
    return clips


def write_pamap2_subject(path, segments, seed):
    """A subject file in the official format: 54 space-separated columns, NaN for missing values. Column 3 (the hand
    IMU's temperature, channel 1) carries the activity id, so a window's activity can be read back from its values."""
    rng = np.random.default_rng(seed)
    activity = np.concatenate([np.full(n, a) for a, n in segments])
    n = activity.size
    table = rng.normal(size=(n, 54))
    table[:, 0] = np.arange(n) / 100.0
    table[:, 1] = activity
    table[:, 2] = np.where(np.arange(n) % 9 == 0, 70 + rng.normal(size=n), np.nan)  # heart rate at ~11 Hz
    table[:2, 2] = np.nan  # leading NaN
    table[:, 3] = activity
    table[100:130, 10:13] = np.nan  # an IMU drop-out
    table[-5:, 20] = np.nan  # trailing NaN
    lines = [" ".join("NaN" if np.isnan(v) else f"{v:.6g}" for v in row) for row in table]
    path.write_text("\n".join(lines) + "\n")


def write_ts_file(path, series_per_class=4, channels=3, length=64, classes=("Walk", "Rest", "Run"), seed=0, missing=()):
    """A classification problem in sktime's `.ts` format: each class is a sine of its own frequency plus noise.
    `missing`: (series, channel, step) cells written as '?'. Returns the values [N, C, T] and the labels."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    values, labels = [], []
    for k, name in enumerate(classes):
        for _ in range(series_per_class):
            phase = rng.uniform(0, 2 * np.pi, (channels, 1))
            values.append(
                np.sin(2 * np.pi * (k + 1) * t / length * 4 + phase) + 0.1 * rng.standard_normal((channels, length))
            )
            labels.append(name)
    values = np.asarray(values, dtype=np.float32)
    lines = [
        "# synthetic test problem",
        "@problemName Synthetic",
        "@timeStamps false",
        "@missing true",
        "@univariate false",
        f"@dimensions {channels}",
        "@equalLength true",
        f"@seriesLength {length}",
        f"@classLabel true {' '.join(classes)}",
        "@data",
    ]
    for i, (series, label) in enumerate(zip(values, labels)):
        dims = []
        for c, channel in enumerate(series):
            cells = ["?" if (i, c, j) in missing else f"{v:.6f}" for j, v in enumerate(channel)]
            dims.append(",".join(cells))
        lines.append(":".join(dims) + ":" + label)
    path.write_text("\n".join(lines) + "\n")
    return values, labels


def write_image_folder(root, per_class=12, classes=("boot", "shirt"), size=20, seed=0) -> Path:
    """An imagefolder layout of random greyscale PNGs: `root/<class>/<n>.png`."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(root / name / f"{n}.png")
    return root


def load_script(path) -> ModuleType:
    """A script of the repository (`training/pretrain.py`, `tools/draw_views.py`, ...) imported by its path."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_in_process(main, argv: list[str]) -> None:
    """Run a script's `main` in this process, with a fresh Accelerate state before and after."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        main(argv)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


# Prepended to a script run in a fresh Python, it makes hf_viewmaker impossible to import: the Python of a Hub user
# who has transformers but not this package.
BLOCK_HF_VIEWMAKER = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockHfViewmaker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "hf_viewmaker" or name.startswith("hf_viewmaker."):
                raise ModuleNotFoundError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, BlockHfViewmaker())
    """
)


def run_python(script: str, *args, cwd: Path, env: dict[str, str], with_package: bool = False) -> str:
    """Run `script` (with `args` as sys.argv[1:]) in a fresh Python whose environment is only `env` (offline unless
    it says otherwise), with hf_viewmaker imported first when `with_package`, else impossible to import; asserts
    that it succeeds and returns what it printed."""
    path = Path(cwd) / ("with_package.py" if with_package else "without_package.py")
    prelude = "import sys\nimport hf_viewmaker\n" if with_package else BLOCK_HF_VIEWMAKER
    path.write_text(prelude + textwrap.dedent(script))
    result = subprocess.run(
        [sys.executable, str(path), *map(str, args)],
        env={"HF_HUB_OFFLINE": "1", "PATH": "", "OMP_NUM_THREADS": "1", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout


def hub_environment(url: str, home: Path) -> dict[str, str]:
    """The environment of a fresh Python that downloads from the Hub-compatible server at `url` into an empty
    cache, with no token."""
    return {
        "HF_ENDPOINT": url,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": str(home),
    }


# Run in a fresh Python (`run_python`): the model card's usage snippet (sys.argv[1]) with the global seed 0, saving
# the `features` and `views` it computed to sys.argv[2].
RUN_A_CARD_SNIPPET = """
import torch
from safetensors.torch import save_file

torch.manual_seed(0)
scope = {}
exec(open(sys.argv[1]).read(), scope)
save_file({"features": scope["features"].contiguous(), "views": scope["views"].contiguous()}, sys.argv[2])
"""


def card_snippet(card_text: str) -> str:
    """The code of a model card's "How to use" section (its first Python block)."""
    return card_text.split("```python\n", 1)[1].split("```", 1)[0]
