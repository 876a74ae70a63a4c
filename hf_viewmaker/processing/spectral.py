"""The short-time Fourier transform both spectrogram front ends share."""

import torch


def centered_stft(signals: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """Complex one-sided STFT ``[N, n_fft // 2 + 1, 1 + T // hop_length]`` of ``signals`` ``[N, T]``: periodic Hann
    window of ``n_fft``, frames centred with reflect padding, no normalisation (librosa's and torchaudio's defaults)."""
    if signals.shape[-1] <= n_fft // 2:
        raise ValueError(
            f"signals of {signals.shape[-1]} samples are too short for the reflect padding of n_fft // 2 = {n_fft // 2}"
        )
    window = torch.hann_window(n_fft, periodic=True, dtype=signals.dtype, device=signals.device)
    return torch.stft(
        signals,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=n_fft,
        window=window,
        center=True,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )
