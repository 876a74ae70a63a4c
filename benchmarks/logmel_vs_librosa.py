#!/usr/bin/env python
"""The batched torch log-mel front end against librosa's per-clip recipe, at equal output.

    python benchmarks/logmel_vs_librosa.py --clips 64 --repeats 5 [--device cuda]

Both compute the paper's features (docs/method.md §4.2: 150,526 samples, n_fft 2048, hop 2360, 64 mels,
power_to_db(S**2) with top_db 80, z-scored) for the same clips; prints one JSON object with the median seconds of
each, the speed-up, and the largest difference in dB. With `--device cuda` the batched front end runs on the GPU, on
clips already there (as in training), and its time includes waiting for the GPU to finish.
"""

import argparse
import json
import statistics
import time

import librosa
import numpy as np
import torch

from hf_viewmaker.processing import LogMelFeatureExtractor


def librosa_features(clips: np.ndarray, extractor: LogMelFeatureExtractor) -> np.ndarray:
    out = []
    for clip in clips:
        mel = librosa.feature.melspectrogram(
            y=clip,
            sr=extractor.sampling_rate,
            n_fft=extractor.n_fft,
            hop_length=extractor.hop_length,
            n_mels=extractor.size,
            pad_mode="reflect",
        )
        db = librosa.power_to_db(mel**2, top_db=extractor.top_db)
        out.append((db - extractor.normalize_mean) / extractor.normalize_std)
    return np.stack(out)[:, None]


CPU = torch.device("cpu")


def timed(function, repeats: int, device: torch.device = CPU) -> tuple[float, object]:
    result, times = None, []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the batched front end runs")
    args = parser.parse_args()
    device = torch.device(args.device)
    extractor = LogMelFeatureExtractor(size=args.size)
    rng = np.random.default_rng(0)
    t = np.arange(extractor.max_length) / extractor.sampling_rate
    clips = np.stack(
        [
            (0.3 * np.sin(2 * np.pi * (100 + 20 * i) * t * (1 + t)) + 0.05 * rng.standard_normal(t.size)).astype(
                np.float32
            )
            for i in range(args.clips)
        ]
    )
    waveforms = torch.from_numpy(clips).to(device)
    extractor.log_mel(waveforms[:2])  # builds the cached filterbank (and, on a GPU, the FFT plans)
    torch_seconds, ours = timed(lambda: extractor.log_mel(waveforms), args.repeats, device)
    librosa_seconds, reference = timed(lambda: librosa_features(clips, extractor), args.repeats)
    difference_db = float(np.abs(ours.cpu().numpy() - reference).max() * extractor.normalize_std)
    print(
        json.dumps(
            {
                "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                "clips": args.clips,
                "samples_per_clip": extractor.max_length,
                "size": args.size,
                "torch_batched_seconds": torch_seconds,
                "librosa_per_clip_seconds": librosa_seconds,
                "speedup": librosa_seconds / torch_seconds,
                "max_abs_difference_db": difference_db,
                "torch_threads": torch.get_num_threads(),
                "librosa": librosa.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
