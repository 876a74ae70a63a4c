"""tools/debian_speech.py: the split, duplicate and resampling rules of the Asterisk-voice and KTuberling class
folders, on tiny generated files (CI installs none of the Debian packages)."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from helpers import load_script

REPO_ROOT = Path(__file__).resolve().parents[1]
speech = load_script(REPO_ROOT / "tools" / "debian_speech.py")


def test_resampling_uses_the_exact_rational_factor_and_averages_channels():
    assert speech.resampling_factor(44100) == (80, 441)
    assert speech.resampling_factor(48000) == (1, 6)
    assert speech.resampling_factor(8000) == (1, 1)
    stereo = np.stack([np.full(4410, 0.5), np.full(4410, -0.5)], axis=1).astype(np.float32)
    mono = speech.to_mono_8k(stereo, 44100)
    assert mono.shape == (speech.resampled_length(4410, 44100),) == (800,)
    assert np.abs(mono).max() < 1e-6  # the two channels cancel
    loud = speech.to_mono_8k(np.sign(np.sin(np.arange(2205) / 3.0)).astype(np.float32), 22050)
    assert loud.shape == (800,) and np.abs(loud).max() <= 1.0  # the filter's overshoot is clipped


def test_hash_split_duplicate_folders_and_word_groups():
    assert speech.asterisk_split("digits/1.wav") == speech.hash_split("digits/1.wav", 20)
    splits = [speech.hash_split(f"word{i}", 22) for i in range(1000)]
    assert 180 < splits.count("test") < 260
    folders = {"sr": {"a", "b"}, "sr@latin": {"b", "a"}, "ca": {"a", "c"}, "sr@ijekavian": {"a", "b"}}
    assert speech.duplicate_folders(folders) == {"sr@ijekavian": "sr", "sr@latin": "sr"}
    groups = speech.word_groups([["tie", "bow"], ["eye"], ["tux-bow", "tux-shoot"], ["tux-bow", "bow"]])
    assert groups == {w: "bow" for w in ("bow", "tie", "tux-bow", "tux-shoot")} | {"eye": "eye"}


def test_copyright_licence_prefers_the_voice_paragraph_then_free_text(tmp_path):
    dep5 = tmp_path / "dep5"
    dep5.write_text("Format: x\n\nFiles: *\nLicense: CC-BY-SA-3.0\n\nFiles: ru-*\nCopyright: M\nLicense: CC-BY-3.0\n")
    assert speech.copyright_licence(dep5, ("ru-*", "*")) == "CC-BY-3.0"
    assert speech.copyright_licence(dep5, ("en-*", "*")) == "CC-BY-SA-3.0"
    free = tmp_path / "free"
    free.write_text(
        "Redistribution and use, with or without modification, are permitted ...\n"
        "GPL; either version 2 of the License, or (at your option) any later version\n"
    )
    assert speech.copyright_licence(free).startswith("BSD-style")
    (tmp_path / "none").write_text("All rights reserved.\n")
    with pytest.raises(ValueError, match="none"):
        speech.copyright_licence(tmp_path / "none")


def _theme(sounds: Path, code: str, sounds_of: dict[str, list[str]]) -> None:
    lines = [f'<sound name="{w}" file="{code}/{f}" />' for f, words in sounds_of.items() for w in words]
    (sounds / f"{code}.soundtheme").write_text(f'<language code="{code}">\n' + "\n".join(lines) + "\n</language>\n")


def test_ktuberling_splits_by_word_and_drops_duplicates_and_bad_files(tmp_path, monkeypatch):
    sounds = tmp_path / "sounds"
    words = ["eye", "nose", "ear", "hat", "bow", "tie", "mouth", "hair"]
    for code, rate, channels in (("aa", 22050, 1), ("bb", 44100, 2), ("cc", 22050, 1)):
        (sounds / code).mkdir(parents=True)
        for i, word in enumerate(words):
            audio = np.random.default_rng([i, len(code), rate, ord(code[0])]).uniform(-0.5, 0.5, (rate // 4, channels))
            soundfile.write(sounds / code / f"{word}.wav", audio, rate)
        _theme(sounds, code, {f"{w}.wav": [w] for w in words})
    (sounds / "cc" / "bow.wav").write_bytes((sounds / "cc" / "tie.wav").read_bytes())  # one recording, two words
    (sounds / "dd").symlink_to(sounds / "aa")  # a duplicate folder under another language's name
    _theme(sounds, "dd", {f"{w}.wav": [w] for w in words})
    (sounds / "aa" / "unnamed.wav").write_bytes((sounds / "aa" / "eye.wav").read_bytes())
    soundfile.write(sounds / "aa" / "hair.wav", np.zeros(0), 22050)  # a header and no samples
    (sounds / "ee").mkdir()
    soundfile.write(sounds / "ee" / "eye.wav", np.zeros(800), 8000)
    _theme(sounds, "ee", {"eye.wav": ["eye"], "nose.wav": ["nose"]})  # too few, and one file missing
    monkeypatch.setattr(speech, "MIN_LANGUAGE_RECORDINGS", 5)
    monkeypatch.setattr(speech, "package_provenance", lambda package: {"package": package})

    manifest = speech.write_ktuberling(tmp_path / "out", sounds)
    left_out = manifest["left_out"]
    assert left_out["duplicate_folders"] == {"dd": "aa"}
    assert left_out["identical_recordings"] == {"cc/tie.wav": "cc/bow.wav"}
    assert left_out["unreadable"] == {"aa/hair.wav": "empty"} and left_out["missing"] == ["ee/nose.wav"]
    assert left_out["unreferenced"] == ["aa/unnamed.wav", "dd/unnamed.wav"]
    assert left_out["too_few_recordings"] == {"ee": 1}
    assert manifest["multi_word_groups"] == {"bow": ["bow", "tie"]}
    assert manifest["languages"] == json.loads((tmp_path / "out" / "manifest.json").read_text())["languages"]
    files = sorted((tmp_path / "out").glob("*/*/*.wav"))
    assert len(files) == 7 + 8 + 7 == manifest["train"] + manifest["test"]
    split_of = {}
    for path in files:
        word = "bow" if path.stem == "tie" else path.stem
        assert split_of.setdefault(word, path.parts[-3]) == path.parts[-3]  # a word's recordings in one split
        info = soundfile.info(path)
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (8000, 1, "PCM_16", 2000)
