"""The short-time Fourier transform both spectrogram front ends share.

``torch.stft(center=True, pad_mode="reflect")`` reflect-pads a copy of the whole signal before framing it; here only
the few frames that reach past either end are cut from a padded copy, and the window is applied while the frames are
copied out, so the framing costs one pass over the signal (it was ~30 % of the log-mel front end's time on CPU).
These are data-side transforms: they write into preallocated buffers, except for signals that need a gradient (a
viewmaker's views of raw sensor windows, docs/method.md §4.6), whose frames are the same products joined instead.
"""

import torch
import torch.nn.functional as F


def stft_num_frames(length: int, n_fft: int, hop_length: int) -> int:
    """Frames of a centred STFT of ``length`` samples: ``1 + length // hop_length`` for an even ``n_fft``."""
    return 1 + (length + 2 * (n_fft // 2) - n_fft) // hop_length


def windowed_frames(
    signals: torch.Tensor,
    n_fft: int,
    hop_length: int,
    out: torch.Tensor | None = None,
    window: torch.Tensor | None = None,
) -> torch.Tensor:
    """Frames ``[N, num_frames, n_fft]`` of ``signals`` ``[N, T]`` (``1 + T // hop_length`` frames for an even
    ``n_fft``), each multiplied by the periodic Hann window: exactly the frames ``torch.stft(center=True, pad_mode="reflect")`` transforms (frame ``t`` starts at
    sample ``t * hop_length - n_fft // 2`` of the signal, reflect-padded at both ends). Written into ``out`` when given
    (same shape, dtype and device); ``window`` may pass the Hann window in when it is reused across calls."""
    count, length = signals.shape
    if length <= n_fft // 2:
        raise ValueError(
            f"signals of {length} samples are too short for the reflect padding of n_fft // 2 = {n_fft // 2}"
        )
    half, frames_count = n_fft // 2, stft_num_frames(length, n_fft, hop_length)
    # Autograd cannot record writes into `out=`; joining the same window products gives the same values.
    differentiable = out is None and signals.requires_grad and torch.is_grad_enabled()
    pieces = []
    if out is None and not differentiable:
        out = signals.new_empty(count, frames_count, n_fft)
    if window is None:
        window = torch.hann_window(n_fft, periodic=True, dtype=signals.dtype, device=signals.device)
    first_inside = min(frames_count, -(-half // hop_length))
    end_inside = max(first_inside, min(frames_count, (length + half - n_fft) // hop_length + 1))
    for lo, hi in ((0, first_inside), (first_inside, end_inside), (end_inside, frames_count)):
        if lo == hi:
            continue
        start, stop = lo * hop_length - half, (hi - 1) * hop_length - half + n_fft  # in signal samples
        # The piece is at least n_fft long (or the whole signal) so that reflect padding sees the same samples it
        # would see on the whole signal.
        begin = max(0, min(start, length - n_fft))
        piece = signals[:, begin : min(length, max(stop, begin + n_fft))]
        if start < 0 or stop > length:
            piece = F.pad(piece, (max(0, -start), max(0, stop - length)), mode="reflect")
        frames = piece[:, max(0, start - begin) :].unfold(-1, n_fft, hop_length)[:, : hi - lo]
        if differentiable:
            pieces.append(frames * window)
        else:
            torch.mul(frames, window, out=out[:, lo:hi])
    return torch.cat(pieces, dim=1) if differentiable else out


def centered_stft(signals: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """Complex one-sided STFT ``[N, n_fft // 2 + 1, num_frames]`` of ``signals`` ``[N, T]``: periodic Hann
    window of ``n_fft``, frames centred with reflect padding, no normalisation (librosa's and torchaudio's defaults;
    equal to ``torch.stft`` with those settings)."""
    return torch.fft.rfft(windowed_frames(signals, n_fft, hop_length)).transpose(-1, -2)
