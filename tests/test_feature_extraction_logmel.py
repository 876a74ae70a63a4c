"""The paper's log-mel front end (docs/method.md §4.2, §4.3): `hf_viewmaker.processing.LogMelFeatureExtractor`.

The reference is librosa (a test-only dependency) called as the original code did, except that librosa >= 0.10 needs
``pad_mode="reflect"`` spelled out (its default became "constant"; the paper ran librosa <= 0.9).

Tolerances, in dB of ``power_to_db(S**2)`` (i.e. before the z-score), over the whole image including the top_db floor
(the floor ``max - 80`` is 1-Lipschitz in the values, so clipping never enlarges an error):
- float32 (the default path): measured max 4.5e-5 dB over chirp / impulse / tone / noise at sizes 32-224; the test
  allows 1e-3 dB. float32 STFT rounding is ~1e-7 of a frame's energy, and the bins that survive the 80 dB range of
  S**2 lie within 40 dB of the peak in S, so their relative error stays ~1e-5 (≈ 1e-4 dB at 8.7 dB per unit).
- float64 (``log_mel`` on a float64 tensor): measured max 7e-7 dB, allowed 1e-5 dB; what remains is librosa's
  filterbank, which it stores in float32.
"""

import json
import math
import pickle
import threading

import numpy as np
import pytest
import torch

from hf_viewmaker.processing import (
    DATASET_NORMALIZATION_STATS,
    HOP_LENGTH_FOR_SIZE,
    MAX_LENGTH,
    LogMelFeatureExtractor,
    feature_extraction_logmel,
)
from hf_viewmaker.processing.spectral import centered_stft

SR = 16000
MEAN, STD = -22.924, 12.587
TOL_DB_FLOAT32 = 1e-3
TOL_DB_FLOAT64 = 1e-5


def _signals(length: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(length) / SR
    duration = length / SR
    chirp = 0.5 * np.sin(2 * np.pi * (100 * t + (7000 - 100) / (2 * duration) * t**2))
    impulses = np.zeros(length)
    impulses[::400] = 1.0
    silence_tone = np.zeros(length)
    half = length // 2
    silence_tone[half:] = 0.3 * np.sin(2 * np.pi * 440 * t[half:])
    return {
        "chirp_noise": chirp + 0.05 * rng.standard_normal(length),
        "impulse_train": impulses,
        "silence_tone": silence_tone,
    }


def _librosa_db(y: np.ndarray, size: int, hop: int) -> np.ndarray:
    librosa = pytest.importorskip("librosa")
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=2048, hop_length=hop, n_mels=size, pad_mode="reflect")
    return librosa.power_to_db(mel**2, ref=1.0, amin=1e-10, top_db=80.0)


def _fit_np(y: np.ndarray) -> np.ndarray:
    """Evaluation fit: first MAX_LENGTH samples, or zeros appended."""
    return y[:MAX_LENGTH] if len(y) >= MAX_LENGTH else np.pad(y, (0, MAX_LENGTH - len(y)))


# ------------------------------------------------------------------------------------------------ against librosa
@pytest.mark.parametrize("size,hop", [(64, 2360), (112, 1344)])
def test_matches_librosa_recipe(size, hop):
    pytest.importorskip("librosa")
    fe = LogMelFeatureExtractor(size=size)
    assert fe.hop_length == hop
    clips, refs = [], []
    for length, seed in [(MAX_LENGTH, 0), (97_000, 1), (201_337, 2)]:  # exact, padded, cropped (first part)
        for y in _signals(length, seed).values():
            clips.append(y.astype(np.float32))
            refs.append(_librosa_db(_fit_np(y.astype(np.float32)).astype(np.float64), size, hop))
    out = fe(clips, sampling_rate=SR)["input_features"]
    assert out.shape == (len(clips), 1, size, size) and out.dtype == torch.float32
    ref_norm = (np.stack(refs) - MEAN) / STD
    err_db = np.abs(out[:, 0].double().numpy() - ref_norm).max() * STD
    assert err_db < TOL_DB_FLOAT32, f"max error {err_db:.3g} dB"

    # float64 through the batched core: much tighter
    waves = fe.fit_length(clips).double()
    db64 = fe.power_to_db(fe.mel_power(waves))
    assert db64.dtype == torch.float64
    err64 = np.abs(db64[:, 0].numpy() - np.stack(refs)).max()
    assert err64 < TOL_DB_FLOAT64, f"max float64 error {err64:.3g} dB"


def test_top_db_floor_is_per_clip():
    fe = LogMelFeatureExtractor(size=64)
    sig = _signals(MAX_LENGTH)
    loud = torch.tensor(sig["chirp_noise"], dtype=torch.float32)
    quiet = torch.tensor(sig["silence_tone"], dtype=torch.float32) * 0.3
    db = fe.power_to_db(fe.mel_power(torch.stack([loud, quiet])))
    assert db[0].max() - db[1].max() > 10.0  # different peaks, so different floors
    for i in range(2):
        peak = db[i].max()
        assert torch.isclose(db[i].min(), peak - 80.0, atol=1e-3)  # the silence/edges sit on the clip's own floor
    # batching never mixes clips: each clip alone gives the same image
    batch = fe.log_mel(torch.stack([loud, quiet]))
    for i, clip in enumerate([loud, quiet]):
        torch.testing.assert_close(batch[i : i + 1], fe.log_mel(clip[None]), rtol=0, atol=1e-5)


def test_all_silent_clip_is_finite():
    fe = LogMelFeatureExtractor(size=64)
    out = fe(np.zeros(20_000, np.float32), sampling_rate=SR)["input_features"]
    torch.testing.assert_close(out, torch.full((1, 1, 64, 64), (-100.0 - MEAN) / STD))  # 10*log10(amin)


def test_mel_power_then_log_is_log_mel_and_masking_hits_floor():
    fe = LogMelFeatureExtractor(size=64)
    waves = torch.tensor(np.stack(list(_signals(MAX_LENGTH).values())), dtype=torch.float32)
    power = fe.mel_power(waves)
    assert power.shape == (3, 1, 64, 64) and bool((power >= 0).all())
    torch.testing.assert_close(fe.to_log_normalized(power), fe.log_mel(waves), rtol=0, atol=0)
    masked = power.clone()
    masked[..., 10:20, :] = 0.0  # frequency mask on the power spectrogram, before the log
    img = fe.to_log_normalized(masked)
    floor = (fe.power_to_db(masked).amax(dim=(-2, -1)) - 80.0 - MEAN) / STD
    torch.testing.assert_close(img[..., 10:20, :], floor[..., None, None].expand(3, 1, 10, 64))


# ------------------------------------------------------------------------------------------------ the fast CPU path
@pytest.mark.parametrize(
    "length,n_fft,hop",
    [
        (150_526, 2048, 2360),
        (150_526, 2048, 672),
        (5_000, 256, 64),
        (300, 256, 100),
        (129, 256, 7),
        (1_001, 255, 50),
        (40, 64, 70),
        (33, 64, 1),
    ],
)  # the paper's hop, overlapping frames, edge frames only, an odd n_fft, hop > n_fft, one-sample hops
def test_centered_stft_equals_torch_stft(length, n_fft, hop):
    signals = torch.randn(3, length, dtype=torch.float64, generator=torch.Generator().manual_seed(length))
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    expected = torch.stft(signals, n_fft, hop, window=window, center=True, pad_mode="reflect", return_complex=True)
    torch.testing.assert_close(centered_stft(signals, n_fft, hop), expected, rtol=0, atol=1e-10)


def test_chunks_blocks_and_threads_do_not_change_the_result(monkeypatch):
    fe = LogMelFeatureExtractor(size=64)
    waves = torch.tensor(np.stack([_fit_np(y) for s in (0, 1) for y in _signals(MAX_LENGTH, s).values()]))[:5]
    window = torch.hann_window(fe.n_fft, periodic=True, dtype=torch.float64)
    spectrum = torch.stft(
        waves, fe.n_fft, fe.hop_length, window=window, center=True, pad_mode="reflect", return_complex=True
    )
    dense = (fe.mel_filters(dtype=torch.float64) @ spectrum.abs().square()).unsqueeze(1)  # one dense matmul
    monkeypatch.setattr(feature_extraction_logmel, "CPU_FRAMES_PER_CHUNK", 2 * fe.num_frames)  # chunks of 2, 2, 1
    torch.testing.assert_close(fe.mel_power(waves), dense, rtol=1e-12, atol=0)

    expected = [fe.log_mel(batch) for batch in (waves[:3].float(), waves[3:].float())]
    results: dict[int, torch.Tensor] = {}
    barrier = threading.Barrier(2)

    def run(index: int, batch: torch.Tensor) -> None:
        barrier.wait()
        results[index] = torch.stack([fe.log_mel(batch) for _ in range(5)])

    threads = [threading.Thread(target=run, args=(i, b)) for i, b in enumerate((waves[:3].float(), waves[3:].float()))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, image in enumerate(expected):  # each thread has its own scratch buffers
        torch.testing.assert_close(results[index], image.expand(5, *image.shape), rtol=0, atol=0)


def test_pickled_extractor_leaves_its_scratch_buffers_behind():
    fe = LogMelFeatureExtractor(size=64)
    waves = torch.randn(2, MAX_LENGTH)
    image = fe.log_mel(waves)
    payload = pickle.dumps(fe)
    assert len(payload) < 1_000_000  # the CPU workspace is ~16 MB
    torch.testing.assert_close(pickle.loads(payload).log_mel(waves), image, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ shapes and inputs
@pytest.mark.parametrize("size", sorted(HOP_LENGTH_FOR_SIZE))
def test_output_is_square(size):
    fe = LogMelFeatureExtractor(size=size)
    assert fe.num_frames == size
    out = fe(torch.randn(2, 50_000), sampling_rate=SR)["input_features"]
    assert out.shape == (2, 1, size, size) and out.dtype == torch.float32


def test_input_forms_agree():
    fe = LogMelFeatureExtractor(size=64)
    rng = np.random.default_rng(3)
    a = rng.standard_normal(MAX_LENGTH + 5_000).astype(np.float32)
    b = rng.standard_normal(MAX_LENGTH - 5_000).astype(np.float32)
    from_list = fe([a, torch.from_numpy(b)], sampling_rate=SR)["input_features"]
    from_single = fe(a, sampling_rate=SR)["input_features"]
    assert from_single.shape == (1, 1, 64, 64)
    torch.testing.assert_close(from_list[:1], from_single)
    same_len = np.stack([a[:MAX_LENGTH], a[-MAX_LENGTH:]])
    torch.testing.assert_close(
        fe(same_len, sampling_rate=SR)["input_features"],  # 2-D numpy
        fe(torch.from_numpy(same_len), sampling_rate=SR)["input_features"],  # 2-D tensor
    )
    torch.testing.assert_close(
        fe(torch.from_numpy(same_len), sampling_rate=SR)["input_features"],
        fe(list(same_len), sampling_rate=SR)["input_features"],  # list of arrays
    )
    floats = fe(b[:3000].tolist(), sampling_rate=SR)["input_features"]  # a plain list of numbers is one clip
    torch.testing.assert_close(floats, fe(b[:3000], sampling_rate=SR)["input_features"])
    as_np = fe([a, b], sampling_rate=SR, return_tensors="np")["input_features"]
    assert isinstance(as_np, np.ndarray) and as_np.dtype == np.float32
    np.testing.assert_allclose(as_np, from_list.numpy())


# ------------------------------------------------------------------------------------------------ fitting the length
def test_fit_length_eval_keeps_first_part_and_pads_with_zeros():
    fe = LogMelFeatureExtractor()
    long = torch.arange(MAX_LENGTH + 10_000, dtype=torch.float32)
    short = torch.arange(1, 1001, dtype=torch.float32)
    fitted = fe.fit_length([long, short])
    assert fitted.shape == (2, MAX_LENGTH) and fitted.dtype == torch.float32
    torch.testing.assert_close(fitted[0], long[:MAX_LENGTH])
    torch.testing.assert_close(fitted[1, :1000], short)
    assert bool((fitted[1, 1000:] == 0).all())
    # evaluation is deterministic whatever the generator
    again = fe.fit_length(torch.stack([long, long]), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(again, torch.stack([long[:MAX_LENGTH]] * 2))
    padded = LogMelFeatureExtractor(padding_value=0.5).fit_length(short)
    assert bool((padded[0, 1000:] == 0.5).all())


def test_fit_length_training_coin_flip_first_or_last():
    fe = LogMelFeatureExtractor()
    batch = 16
    clips = torch.arange(batch * (MAX_LENGTH + 777), dtype=torch.float64).reshape(batch, -1) % 1e6
    clips = clips.float()
    flips = torch.randint(0, 2, (batch,), generator=torch.Generator().manual_seed(7)).bool()
    assert 0 < int(flips.sum()) < batch  # this seed exercises both sides
    expected = torch.stack([c[-MAX_LENGTH:] if f else c[:MAX_LENGTH] for c, f in zip(clips, flips)])
    from_tensor = fe.fit_length(clips, training=True, generator=torch.Generator().manual_seed(7))
    from_list = fe.fit_length(list(clips), training=True, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(from_tensor, expected, rtol=0, atol=0)
    torch.testing.assert_close(from_list, expected, rtol=0, atol=0)
    # __call__ uses the same flips
    feats = fe(clips, sampling_rate=SR, training=True, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(feats["input_features"], fe.log_mel(expected))
    # short clips are padded in training too
    short = fe.fit_length(torch.ones(3, 500), training=True, generator=torch.Generator().manual_seed(0))
    assert bool((short[:, :500] == 1).all()) and bool((short[:, 500:] == 0).all())


# ------------------------------------------------------------------------------------------------ config
def test_save_pretrained_round_trip(tmp_path):
    fe = LogMelFeatureExtractor(size=112, normalize_mean=-37.075, normalize_std=19.776, top_db=70.0)
    fe.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "preprocessor_config.json").read_text())
    for key, value in {
        "feature_size": 1,
        "sampling_rate": 16000,
        "size": 112,
        "n_fft": 2048,
        "hop_length": 1344,
        "max_length": MAX_LENGTH,
        "top_db": 70.0,
        "normalize_mean": -37.075,
        "normalize_std": 19.776,
        "padding_value": 0.0,
        "feature_extractor_type": "LogMelFeatureExtractor",
    }.items():
        assert config[key] == value, key
    assert not any(key.startswith("_") for key in config)
    loaded = LogMelFeatureExtractor.from_pretrained(tmp_path)
    assert loaded.to_dict() == fe.to_dict()
    wave = torch.randn(2, 40_000)
    torch.testing.assert_close(
        loaded(wave, sampling_rate=SR)["input_features"], fe(wave, sampling_rate=SR)["input_features"]
    )
    # overriding the size re-derives the paper's hop; an explicit hop is kept
    assert LogMelFeatureExtractor.from_pretrained(tmp_path, size=64).hop_length == 2360
    LogMelFeatureExtractor(size=112, hop_length=1000).save_pretrained(tmp_path / "custom")
    custom = LogMelFeatureExtractor.from_pretrained(tmp_path / "custom")
    assert custom.hop_length == 1000 and custom.num_frames == 1 + MAX_LENGTH // 1000


def test_dataset_statistics():
    assert DATASET_NORMALIZATION_STATS["librispeech"]["mean"] == MEAN
    assert DATASET_NORMALIZATION_STATS["librispeech"]["std"] == STD
    default = LogMelFeatureExtractor()
    assert (default.normalize_mean, default.normalize_std) == (MEAN, STD)
    mnist = LogMelFeatureExtractor.for_dataset("audio_mnist", size=112)
    assert (mnist.normalize_mean, mnist.normalize_std, mnist.sampling_rate) == (-90.293, 11.799, 48000)
    assert mnist.size == 112 and mnist.hop_length == 1344
    assert set(DATASET_NORMALIZATION_STATS) == {
        "librispeech",
        "voxceleb1",
        "audio_mnist",
        "google_speech_commands",
        "fluent_speech_commands",
    }
    with pytest.raises(ValueError, match="unknown dataset"):
        LogMelFeatureExtractor.for_dataset("timit")


def test_fitted_statistics_normalise_the_training_clips():
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(n).astype(np.float32) * scale for n, scale in ((9000, 0.1), (20000, 0.5), (4000, 1.0))]
    fe = LogMelFeatureExtractor(sampling_rate=8000, size=32, n_fft=512, hop_length=516, max_length=16000)
    # Items of a speech dataset, in batches smaller than the data, give the statistics of all the dB images at once.
    fitted = fe.fit_statistics(({"waveform": torch.from_numpy(c)} for c in clips), batch_size=2)
    assert fitted is fe
    db = fe.power_to_db(fe.mel_power(fe.fit_length(clips)))
    assert fe.normalize_mean == pytest.approx(float(db.double().mean()), abs=1e-3)
    assert fe.normalize_std == pytest.approx(float(db.double().std(unbiased=False)), abs=1e-3)
    normalised = fe(clips)["input_features"]
    assert float(normalised.mean()) == pytest.approx(0.0, abs=1e-4) and float(normalised.std()) == pytest.approx(
        1, abs=1e-3
    )
    # They are saved like any other field; at most `max_clips` are used; no clip is an error.
    assert LogMelFeatureExtractor.from_dict(fe.to_dict()).normalize_mean == fe.normalize_mean
    first_only = LogMelFeatureExtractor(sampling_rate=8000, size=32, n_fft=512, hop_length=516, max_length=16000)
    first_only.fit_statistics(clips, max_clips=1)
    assert first_only.normalize_mean != pytest.approx(fe.normalize_mean)
    with pytest.raises(ValueError, match="empty"):
        first_only.fit_statistics([])


# ------------------------------------------------------------------------------------------------ errors
def test_sampling_rate_mismatch_raises():
    fe = LogMelFeatureExtractor()
    with pytest.raises(ValueError, match="sampling_rate"):
        fe(np.zeros(1000, np.float32), sampling_rate=22050)


def test_non_finite_clip_names_its_index():
    fe = LogMelFeatureExtractor()
    clips = [np.zeros(1000, np.float32), np.ones(2000, np.float32), np.zeros(500, np.float32)]
    clips[2][10] = np.nan
    with pytest.raises(ValueError, match=r"raw_speech\[2\]"):
        fe(clips, sampling_rate=SR)
    batch = torch.zeros(3, 2000)
    batch[1, 5] = math.inf
    with pytest.raises(ValueError, match=r"raw_speech\[1\]"):
        fe(batch, sampling_rate=SR)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"size": 100}, "size"),
        ({"size": 0}, "size"),
        ({"n_fft": 0}, "n_fft"),
        ({"hop_length": -1}, "hop_length"),
        ({"max_length": 0}, "max_length"),
        ({"max_length": 1000}, "max_length"),  # not enough samples for the reflect padding of n_fft 2048
        ({"sampling_rate": 0}, "sampling_rate"),
        ({"top_db": -5.0}, "top_db"),
        ({"normalize_std": 0.0}, "normalize_std"),
        ({"normalize_mean": float("nan")}, "normalize_mean"),
        ({"feature_size": 2}, "feature_size"),
    ],
)
def test_bad_config_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        LogMelFeatureExtractor(**kwargs)


def test_bad_inputs():
    fe = LogMelFeatureExtractor()
    with pytest.raises(ValueError, match="mono"):
        fe(torch.zeros(2, 2, 1000), sampling_rate=SR)
    with pytest.raises(ValueError, match=r"raw_speech\[1\]"):
        fe([np.zeros(10), np.zeros((2, 10))], sampling_rate=SR)
    with pytest.raises(ValueError, match="waveforms"):
        fe.log_mel(torch.zeros(MAX_LENGTH))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_matches_cpu():
    fe = LogMelFeatureExtractor(size=64)
    waves = torch.randn(4, MAX_LENGTH + 100)
    cpu = fe(waves, sampling_rate=SR)["input_features"]
    gpu = fe(waves.cuda(), sampling_rate=SR)["input_features"]
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-4)
    on_device = fe(
        list(waves),
        sampling_rate=SR,
        device="cuda",
        training=True,
        generator=torch.Generator(device="cuda").manual_seed(0),
    )["input_features"]
    assert on_device.device.type == "cuda" and on_device.shape == (4, 1, 64, 64)
