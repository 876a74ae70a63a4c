"""Lay out the real data of the small-scale comparison (docs/results.md) from what installs offline.

    apt-get install dataset-fashion-mnist asterisk-core-sounds-{en,es,fr,it,ru}-wav
    python tools/prepare_small_scale_data.py --output_dir data/small_scale
    # asterisk8 and ktuberling also need:
    apt-get install asterisk-prompt-es-co asterisk-prompt-fr-armelle asterisk-prompt-it-menardi-wav ktuberling-data

Writes, under `--output_dir` (nothing here is committed: the data keep their own licences):

* `fashion_mnist/{train,test}.parquet`: Debian's `dataset-fashion-mnist` (Zalando SE, MIT) in the Hub's image schema,
  the first `--fashion_mnist_train` training images and the whole 10,000-image test set;
* `basic_motions/BasicMotions_{TRAIN,TEST}.ts`: the UEA archive's BasicMotions (smartwatch accelerometer +
  gyroscope, 6 channels x 100 steps at 10 Hz, 4 activities, 40 + 40 series), copied from an installed sktime or aeon,
  else from the aeon wheel (`pip download --no-deps aeon==1.6.0`: the wheel is only unzipped, never installed);
* `asterisk/{train,test}/<voice>/*.wav`: links to Debian's Asterisk prompts (CC-BY-SA-3.0, 8 kHz), one class per
  recorded voice (en-US Allison, es-MX Allison, fr-CA June, it-IT Carlo, ru-RU), every prompt of a voice in one
  split, 20 % of them in `test` chosen by a hash of the prompt's path (so the split never changes). Prompts with no
  samples (a few files are empty) are left out and counted;
* `watch/Watch_{TRAIN,TEST}.ts`, `watch/manifest.json`, `watch/windows.csv`: the wrist-IMU "watch" dataset of seglearn
  (Burns et al. 2018, BSD-3-Clause: 10 subjects, 7 shoulder exercises, 140 recordings of 19-52 s, accelerometer +
  gyroscope, 6 channels at 50 Hz), cut into windows of 2 s every 1 s and split by subject (subjects 8, 9, 10 in
  `test`) by `tools/watch_dataset.py`. Its source, `watch/source/watch_dataset.npy`, is unzipped from the seglearn
  wheel (`pip download --no-deps seglearn==1.2.5`: never installed, never imported), kept, checked against its
  SHA-256 and read by an unpickler that allows numpy arrays only;
* `asterisk8/{train,test}/<voice>/*.wav`, `asterisk8/manifest.json`: the five voices above plus es-CO
  (`asterisk-prompt-es-co`, GPL-2), fr-FR Armelle (`asterisk-prompt-fr-armelle`, BSD-style) and it-IT Menardi
  (`asterisk-prompt-it-menardi-wav`, CC-BY-SA-3.0), 8 kHz mono 16-bit WAV (the GSM 6.10 prompts decoded, the others
  linked), each voice's files taken from its package (`dpkg -L`), the same split rule, empty prompts left out and
  counted; the manifest holds the counts, the packages' versions and licences (`tools/debian_speech.py`);
* `ktuberling_language/{train,test}/<language>/<word>.wav`, `ktuberling_language/manifest.json`: KTuberling's spoken
  words (`ktuberling-data`, GPL-2+) resampled to 8 kHz mono, for spoken-language identification split by word (~22 %
  of words in `test`, every language's recording of a word in the same split); duplicate language folders,
  identical recordings, unnamed, empty or unreadable files and languages with fewer than 40 recordings are left out
  and listed in the manifest (`tools/debian_speech.py`).
"""

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import soundfile
from datasets import ClassLabel, Dataset, Features, Image
from debian_speech import asterisk_split, write_asterisk8, write_ktuberling
from make_fashion_mnist_sample import CLASSES, SOURCE, read_idx
from watch_dataset import WATCH_MEMBER, WATCH_WHEEL, convert_watch, read_watch, sha256_of, summary_lines

ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds")
ASTERISK_VOICES = ("en_US_f_Allison", "es_MX_f_Allison", "fr_CA_f_June", "it_IT_m_Carlo", "ru_RU_f_IvrvoiceRU")
BASIC_MOTIONS_FILES = ("BasicMotions_TRAIN.ts", "BasicMotions_TEST.ts")
AEON_WHEEL = "aeon==1.6.0"
# seglearn-1.2.5-py3-none-any.whl's seglearn/data/watch_dataset.npy.
WATCH_SHA256 = "eb122f23cdf06ef6bd6c6c5312958ec5cf9d038e2e6d457b8081662c75a42537"


def write_fashion_mnist(target: Path, train_images: int) -> None:
    features = Features({"image": Image(), "label": ClassLabel(names=CLASSES)})
    target.mkdir(parents=True, exist_ok=True)
    for split, prefix, count in (("train", "train", train_images), ("test", "t10k", None)):
        images = read_idx(SOURCE / f"{prefix}-images-idx3-ubyte.gz")[:count]
        labels = read_idx(SOURCE / f"{prefix}-labels-idx1-ubyte.gz")[:count]
        Dataset.from_dict({"image": list(images), "label": labels.tolist()}, features=features).to_parquet(
            target / f"{split}.parquet"
        )
        print(f"fashion_mnist/{split}.parquet: {len(labels)} images")


def _installed_basic_motions() -> Path | None:
    for package in ("aeon", "sktime"):
        spec = importlib.util.find_spec(package)  # locates the package without importing it
        if spec is not None and spec.submodule_search_locations:
            folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "BasicMotions"
            if all((folder / name).is_file() for name in BASIC_MOTIONS_FILES):
                return folder
    return None


def write_basic_motions(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    folder = _installed_basic_motions()
    if folder is not None:
        for name in BASIC_MOTIONS_FILES:
            shutil.copyfile(folder / name, target / name)
    else:
        with tempfile.TemporaryDirectory() as download:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", AEON_WHEEL, "-d", download], check=True
            )
            (wheel,) = Path(download).glob("aeon-*.whl")
            with zipfile.ZipFile(wheel) as archive:
                for name in BASIC_MOTIONS_FILES:
                    (target / name).write_bytes(archive.read(f"aeon/datasets/data/BasicMotions/{name}"))
    print(f"basic_motions: {', '.join(BASIC_MOTIONS_FILES)}")


def write_asterisk(target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    counts, empty = {}, []
    for voice in ASTERISK_VOICES:
        folder = ASTERISK_SOUNDS / voice
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} not found: apt-get install asterisk-core-sounds-{voice[:2]}-wav")
        for path in sorted(folder.rglob("*.wav")):
            if soundfile.info(path).frames == 0:
                empty.append(str(path))
                continue
            relative = path.relative_to(folder).as_posix()
            split = asterisk_split(relative)
            link = target / split / voice / relative.replace("/", "__")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(path)
            counts[split, voice] = counts.get((split, voice), 0) + 1
    for (split, voice), count in sorted(counts.items()):
        print(f"asterisk/{split}/{voice}: {count} prompts")
    print(f"asterisk: left out {len(empty)} empty files: {', '.join(empty)}")


def fetch_watch_source(path: Path) -> None:
    """Unzip `seglearn/data/watch_dataset.npy` to `path` from the seglearn wheel, fetched with `pip download`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as download:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", WATCH_WHEEL, "-d", download], check=True)
        (wheel,) = Path(download).glob("seglearn-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            path.write_bytes(archive.read(WATCH_MEMBER))


def write_watch(target: Path) -> None:
    source = target / "source" / "watch_dataset.npy"
    if not source.is_file() or sha256_of(source) != WATCH_SHA256:
        fetch_watch_source(source)
    digest = sha256_of(source)
    if digest != WATCH_SHA256:
        raise ValueError(f"{source}: SHA-256 {digest}, expected {WATCH_SHA256} (the file of {WATCH_WHEEL})")
    manifest = convert_watch(
        read_watch(source), target, source={"wheel": WATCH_WHEEL, "member": WATCH_MEMBER, "sha256": digest}
    )
    print("\n".join(summary_lines(manifest)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="data/small_scale")
    parser.add_argument("--fashion_mnist_train", type=int, default=10000, help="training images kept (of 60,000)")
    parser.add_argument(
        "--only", choices=["fashion_mnist", "basic_motions", "asterisk", "watch", "asterisk8", "ktuberling"], nargs="+"
    )
    args = parser.parse_args()
    root = Path(args.output_dir)
    writers = {
        "fashion_mnist": lambda: write_fashion_mnist(root / "fashion_mnist", args.fashion_mnist_train),
        "basic_motions": lambda: write_basic_motions(root / "basic_motions"),
        "asterisk": lambda: write_asterisk(root / "asterisk"),
        "watch": lambda: write_watch(root / "watch"),
        "asterisk8": lambda: write_asterisk8(root / "asterisk8"),
        "ktuberling": lambda: write_ktuberling(root / "ktuberling_language"),
    }
    for name in args.only or writers:
        writers[name]()


if __name__ == "__main__":
    main()
