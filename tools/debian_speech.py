"""Debian's packaged speech recordings as class folders of 8 kHz mono 16-bit WAV files.

* Asterisk prompts, one class per recorded voice (:func:`write_asterisk8`): a voice's files are the ones its Debian
  package owns (`dpkg -L`), never a folder taken by name, since `/usr/share/asterisk/sounds/{es,fr,it,...}` may be
  update-alternatives links to another voice. WAV prompts already at 8 kHz mono 16-bit are linked; GSM 6.10 prompts
  (`.gsm`, raw at 8 kHz) are decoded and written. Split: every prompt of a voice in one split, ~20 % in `test`
  by a hash of the prompt's path inside its voice's folder (suffix `.wav`, so that a prompt recorded by several
  voices lands in the same split for all of them).
* KTuberling's spoken words (`ktuberling-data`, GPL-2+), read through the `<language>.soundtheme` files, which name
  the word (shared across languages: "eye", "egypt_camel", ...) of each recording (:func:`write_ktuberling`):

  which language a word is spoken in, split by word (every language's recording of a word in the same split, ~22 %
  of words in `test` by a hash of the word), so that the probe meets only words it never heard. Words that share a
  recording in a kept language (one file named for two words, or identical files) form one group, split
  together.

  Language folders whose recordings are all identical to an earlier folder's (the `sr@...` variants of `sr`) are
  dropped, then identical recordings are kept once; files no sound theme names, empty or unreadable files, and
  languages with fewer than :data:`MIN_LANGUAGE_RECORDINGS` recordings are left out. Each clip is averaged to mono
  and resampled to 8 kHz with `scipy.signal.resample_poly` by the exact rational factor.

Each output folder gets a `manifest.json` with the counts per class and split and what was left out.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from collections.abc import Iterable, Mapping
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

TARGET_RATE = 8000
ASTERISK_TEST_PERCENT = 20
# Class folder -> the Debian package whose files are that voice's prompts.
ASTERISK8_VOICES = {
    "en_US_f_Allison": "asterisk-core-sounds-en-wav",
    "es_MX_f_Allison": "asterisk-core-sounds-es-wav",
    "fr_CA_f_June": "asterisk-core-sounds-fr-wav",
    "it_IT_m_Carlo": "asterisk-core-sounds-it-wav",
    "ru_RU_f_IvrvoiceRU": "asterisk-core-sounds-ru-wav",
    "es_CO_f_July": "asterisk-prompt-es-co",
    "fr_FR_f_Armelle": "asterisk-prompt-fr-armelle",
    "it_IT_f_Menardi": "asterisk-prompt-it-menardi-wav",
}
PROMPT_SUFFIXES = (".wav", ".gsm")
# Copyright files not in Debian's machine-readable format: the phrase that names the licence, and its name. The
# phrase found first in the file wins, since upstream's licence comes before the packaging's.
FREE_TEXT_LICENCES = (
    ("GNU General Public License as published by the Free Software Foundation; version 2", "GPL-2"),
    ("either version 2 of the License, or (at your option) any later version", "GPL-2+"),
    ("Redistribution and use, with or without modification, are permitted", "BSD-style (permissive, no endorsement)"),
)

KTUBERLING_PACKAGE = "ktuberling-data"
KTUBERLING_SOUNDS = Path("/usr/share/ktuberling/sounds")
KTUBERLING_TEST_PERCENT = 22
# A language with fewer recordings has ~3 test words: too few to measure it (the languages with only the 11-15 words
# of the potato face are the ones left out; the next smallest has 70).
MIN_LANGUAGE_RECORDINGS = 40


# ==================================================================================================== pure helpers
def hash_split(key: str, test_percent: int) -> str:
    """`test` for a fixed `test_percent` % of keys, by a SHA-1 of the key (so the split never changes)."""
    digest = int(hashlib.sha1(key.encode()).hexdigest(), 16)
    return "test" if digest % 100 < test_percent else "train"


def asterisk_split(relative_path: str) -> str:
    """`test` for a fixed ~20 % of prompts, by a hash of the prompt's path inside its voice folder."""
    return hash_split(relative_path, ASTERISK_TEST_PERCENT)


def resampling_factor(sampling_rate: int, target_rate: int = TARGET_RATE) -> tuple[int, int]:
    """`(up, down)` in lowest terms with `sampling_rate * up / down == target_rate` exactly."""
    factor = Fraction(target_rate, sampling_rate)
    return factor.numerator, factor.denominator


def resampled_length(frames: int, sampling_rate: int, target_rate: int = TARGET_RATE) -> int:
    """The length `to_mono_8k` gives a clip of `frames` samples (`resample_poly`'s `ceil(frames * up / down)`)."""
    up, down = resampling_factor(sampling_rate, target_rate)
    return math.ceil(frames * up / down)


def to_mono_8k(audio: np.ndarray, sampling_rate: int) -> np.ndarray:
    """A clip `[T]` or `[T, channels]` averaged to mono and resampled to 8 kHz, clipped to [-1, 1] (the anti-alias
    filter may overshoot full scale, which 16-bit samples cannot hold)."""
    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    up, down = resampling_factor(sampling_rate)
    if (up, down) != (1, 1):
        mono = resample_poly(mono.astype(np.float64), up, down)
    return np.clip(mono, -1.0, 1.0).astype(np.float32)


def sha256_bytes(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def duplicate_folders(folder_hashes: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """`{dropped: kept}` for each folder whose set of content hashes equals that of a folder earlier in sorted order."""
    first_with, dropped = {}, {}
    for name in sorted(folder_hashes):
        key = frozenset(folder_hashes[name])
        if key in first_with:
            dropped[name] = first_with[key]
        else:
            first_with[key] = name
    return dropped


def word_groups(recordings: Iterable[Iterable[str]]) -> dict[str, str]:
    """Each word -> its group's first word (sorted), where the words of one recording share a group (transitively)."""
    parent: dict[str, str] = {}

    def root(word: str) -> str:
        while parent[word] != word:
            parent[word] = parent[parent[word]]
            word = parent[word]
        return word

    for words in recordings:
        words = sorted(words)
        for word in words:
            parent.setdefault(word, word)
        for word in words[1:]:
            a, b = sorted((root(words[0]), root(word)))
            parent[b] = a
    return {word: root(word) for word in parent}


def read_sound_theme(path: Path) -> tuple[str, dict[str, list[str]]]:
    """A KTuberling `.soundtheme`: its language code and `{file (relative to the sounds folder): [words]}`."""
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise ValueError(f"{path}: not a readable sound theme: {error}") from error
    code = root.get("code")
    if not code:
        raise ValueError(f"{path}: the <language> element has no code")
    words: dict[str, list[str]] = defaultdict(list)
    for sound in root.iter("sound"):
        if sound.get("name") not in words[sound.get("file")]:
            words[sound.get("file")].append(sound.get("name"))
    return code, dict(words)


def copyright_licence(path: Path, files_patterns: tuple[str, ...] = ("*",)) -> str:
    """The licence of a package's recordings, from its Debian copyright file: in the machine-readable format, the
    `License:` of the paragraph whose `Files:` is the first of `files_patterns` present, else the one
    :data:`FREE_TEXT_LICENCES` phrase found first."""
    text = path.read_text(encoding="utf-8", errors="replace")
    licences = {}
    for paragraph in re.split(r"\n[ \t]*\n", text):
        fields = dict(re.findall(r"^(Files|License):[ \t]*(.*)$", paragraph, flags=re.MULTILINE))
        if fields.get("Files", "").strip() and fields.get("License", "").strip():
            licences.setdefault(fields["Files"].strip(), fields["License"].strip())
    for pattern in files_patterns:
        if pattern in licences:
            return licences[pattern]
    flat = " ".join(text.split())
    found = sorted((flat.find(phrase), name) for phrase, name in FREE_TEXT_LICENCES if phrase in flat)
    if not found:
        raise ValueError(f"{path}: no `Files: *` licence and none of the known licence phrases")
    return found[0][1]


def write_wav(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio, TARGET_RATE, subtype="PCM_16")


# ==================================================================================================== Debian
def package_files(package: str, suffixes: tuple[str, ...]) -> list[Path]:
    """The regular files of an installed Debian package with one of `suffixes`, sorted."""
    listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
    if listing.returncode != 0:
        raise FileNotFoundError(f"Debian package {package} is not installed: apt-get install {package}")
    return sorted(
        Path(line) for line in listing.stdout.splitlines() if line.endswith(suffixes) and Path(line).is_file()
    )


def package_provenance(package: str, files_patterns: tuple[str, ...] = ("*",)) -> dict[str, str]:
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=True
    ).stdout
    copyright_file = Path("/usr/share/doc") / package / "copyright"
    return {"package": package, "version": version, "licence": copyright_licence(copyright_file, files_patterns)}


# ==================================================================================================== writers
def write_asterisk8(target: Path) -> dict:
    """`target/{train,test}/<voice>/*.wav` for the eight voices of :data:`ASTERISK8_VOICES`, and the manifest."""
    if target.exists():
        shutil.rmtree(target)
    voices = {}
    for voice, package in ASTERISK8_VOICES.items():
        files = package_files(package, PROMPT_SUFFIXES)
        if not files:
            raise ValueError(f"Debian package {package} has no {'/'.join(PROMPT_SUFFIXES)} prompts")
        folder = Path(os.path.commonpath([path.parent for path in files]))
        counts, empty, decoded = {"train": 0, "test": 0}, [], 0
        for path in files:
            info = soundfile.info(path)
            if info.frames == 0:
                empty.append(str(path))
                continue
            relative = path.relative_to(folder).with_suffix(".wav").as_posix()
            split = asterisk_split(relative)
            output = target / split / voice / relative.replace("/", "__")
            output.parent.mkdir(parents=True, exist_ok=True)
            if (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", TARGET_RATE, 1):
                output.symlink_to(path)
            else:
                audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
                write_wav(output, to_mono_8k(audio, rate))
                decoded += 1
            counts[split] += 1
        voices[voice] = {
            # The five core-sounds packages share one copyright file with a paragraph per upstream tarball (`ru-*`).
            **package_provenance(package, (f"{voice[:2]}-*", "*")),
            "source_folder": str(folder),
            **counts,
            "decoded": decoded,
            "empty_left_out": empty,
        }
        print(f"asterisk8/{voice}: {counts['train']} train, {counts['test']} test, {len(empty)} empty ({package})")
    manifest = {
        "sampling_rate": TARGET_RATE,
        "split": f"{ASTERISK_TEST_PERCENT} % of each voice's prompts in test, by SHA-1 of the path in its folder",
        "voices": voices,
        "train": sum(v["train"] for v in voices.values()),
        "test": sum(v["test"] for v in voices.values()),
    }
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def collect_ktuberling(sounds: Path) -> tuple[list[dict], dict]:
    """KTuberling's usable recordings, each `{"language", "file", "words", "audio"}` (8 kHz mono), sorted by language
    and file, and what was left out and why (file paths relative to `sounds`)."""
    themes = dict(read_sound_theme(path) for path in sorted(sounds.glob("*.soundtheme")))
    if not themes:
        raise FileNotFoundError(f"no *.soundtheme under {sounds}: apt-get install {KTUBERLING_PACKAGE}")
    referenced = {file for files in themes.values() for file in files}
    left_out: dict = {
        "missing": sorted(file for file in referenced if not (sounds / file).is_file()),
        "unreferenced": sorted(
            path.relative_to(sounds).as_posix()
            for path in sounds.glob("*/*")
            if path.is_file() and path.relative_to(sounds).as_posix() not in referenced
        ),
    }
    digests = {file: sha256_bytes(sounds / file) for file in sorted(referenced) if (sounds / file).is_file()}
    folder_hashes = {code: {digests[f] for f in files if f in digests} for code, files in themes.items()}
    left_out["no_recordings_installed"] = sorted(code for code, hashes in folder_hashes.items() if not hashes)
    left_out["duplicate_folders"] = duplicate_folders({c: h for c, h in folder_hashes.items() if h})
    kept_by_digest: dict[str, dict] = {}
    left_out["identical_recordings"] = {}
    for code in sorted(themes):
        if code in left_out["duplicate_folders"] or code in left_out["no_recordings_installed"]:
            continue
        for file, words in sorted(themes[code].items()):
            if file not in digests:
                continue
            kept = kept_by_digest.get(digests[file])
            if kept is None:
                kept_by_digest[digests[file]] = {"language": code, "file": file, "words": set(words)}
            else:  # the same sound named for other words: one recording, all its words
                kept["words"].update(words)
                left_out["identical_recordings"][file] = kept["file"]
    recordings, left_out["unreadable"] = [], {}
    for recording in sorted(kept_by_digest.values(), key=lambda r: (r["language"], r["file"])):
        path = sounds / recording["file"]
        try:
            audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
        except Exception as error:  # libsndfile's errors are plain RuntimeError / LibsndfileError
            left_out["unreadable"][recording["file"]] = str(error)
            continue
        if audio.shape[0] == 0:
            left_out["unreadable"][recording["file"]] = "empty"
            continue
        recordings.append(
            {**recording, "words": sorted(recording["words"]), "rate": rate, "audio": to_mono_8k(audio, rate)}
        )
    return recordings, left_out


def _write_split_folders(target: Path, examples: list[tuple[str, str, str, np.ndarray]]) -> dict[str, dict[str, int]]:
    """Write `(split, class, name, audio)` examples as `target/<split>/<class>/<name>.wav`; counts per class/split."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"train": 0, "test": 0})
    for split, label, name, audio in examples:
        output = target / split / label / f"{name}.wav"
        if output.exists():
            raise ValueError(f"{output} would be written twice: two recordings of {label} are named {name}")
        write_wav(output, audio)
        counts[label][split] += 1
    return dict(sorted(counts.items()))


def write_ktuberling(target: Path, sounds: Path = KTUBERLING_SOUNDS) -> dict:
    """`target/{train,test}/<language>/<word>.wav` (language ID, split by word) and its manifest."""
    if target.exists():
        shutil.rmtree(target)
    recordings, left_out = collect_ktuberling(sounds)
    for recording in recordings:
        for word in recording["words"]:
            if not re.fullmatch(r"[\w.-]+", word):
                raise ValueError(f"{sounds / recording['file']}: word {word!r} is not a safe file name")
    source = {**package_provenance(KTUBERLING_PACKAGE), "folder": str(sounds)}
    rates = sorted({r["rate"] for r in recordings})

    per_language = defaultdict(int)
    for recording in recordings:
        per_language[recording["language"]] += 1
    too_few = {code: n for code, n in sorted(per_language.items()) if n < MIN_LANGUAGE_RECORDINGS}
    language_recordings = [r for r in recordings if r["language"] not in too_few]
    groups = word_groups(r["words"] for r in language_recordings)
    group_split = {group: hash_split(group, KTUBERLING_TEST_PERCENT) for group in set(groups.values())}
    counts = _write_split_folders(
        target,
        [(group_split[groups[r["words"][0]]], r["language"], r["words"][0], r["audio"]) for r in language_recordings],
    )
    manifest = {
        "source": source,
        "source_sampling_rates": rates,
        "sampling_rate": TARGET_RATE,
        "task": "spoken-language identification; split by word",
        "split": f"~{KTUBERLING_TEST_PERCENT} % of word groups in test, by SHA-1 of the group's first word; words "
        "that share a recording in a kept language form one group",
        "word_groups": {s: sum(v == s for v in group_split.values()) for s in ("train", "test")},
        "multi_word_groups": {
            g: sorted(w for w in groups if groups[w] == g)
            for g in sorted(set(groups.values()))
            if sum(v == g for v in groups.values()) > 1
        },
        "min_language_recordings": MIN_LANGUAGE_RECORDINGS,
        "languages": counts,
        "train": sum(c["train"] for c in counts.values()),
        "test": sum(c["test"] for c in counts.values()),
        "left_out": {**left_out, "too_few_recordings": too_few},
    }
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for code, count in counts.items():
        print(f"{target.name}/{code}: {count['train']} train, {count['test']} test")
    print(
        f"{target.name}: left out the duplicate folders {manifest['left_out']['duplicate_folders']}, the languages "
        f"with < {MIN_LANGUAGE_RECORDINGS} recordings {too_few}; see manifest.json for the files left out"
    )
    return manifest
