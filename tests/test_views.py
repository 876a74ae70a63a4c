"""Expert views (hf_viewmaker.views): recipes of docs/method.md §4.1, §4.2 and §4.4, batched and reproducible."""

import math
import time

import pytest
import torch

from hf_viewmaker.views import ImuViews, SimCLRImageViews, SpectralMaskingViews, WaveformCropNoiseViews


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# Everything off except what a test turns on: crop of the whole image, no jitter, no grey, no blur, no flip.
IDENTITY = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, flip_p=0.0)


def identity_views(**overrides) -> SimCLRImageViews:
    return SimCLRImageViews(32, **{**IDENTITY, **overrides})


def colourful(batch: int = 8, channels: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, channels, size, size, generator=gen(seed))


# ------------------------------------------------------------------------------------------------------------- images
@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_images_shape_dtype_range(channels, dtype):
    x = colourful(16, channels).to(dtype)
    y = SimCLRImageViews(32)(x, gen())
    assert y.shape == x.shape and y.dtype == dtype
    assert y.min() >= 0 and y.max() <= 1


def test_images_resize_to_size():
    y = SimCLRImageViews((24, 20))(colourful(4, size=40), gen())
    assert y.shape == (4, 3, 24, 20)


def test_images_identity_when_everything_off():
    x = colourful()
    torch.testing.assert_close(identity_views()(x, gen()), x)


def test_images_reproducible_and_independent():
    views = SimCLRImageViews(32)
    x = colourful(1).expand(16, -1, -1, -1)  # the same image 16 times
    g = gen(3)
    first, second = views(x, g), views(x, g)
    torch.testing.assert_close(views(x, gen(3)), first)  # same seed, same views
    assert not torch.equal(first, second)  # the generator moves on between calls
    flat = first.flatten(1)
    assert torch.cdist(flat, flat).fill_diagonal_(1.0).min() > 0  # every example got its own parameters


def test_images_global_rng_without_generator():
    views, x = SimCLRImageViews(32), colourful()
    torch.manual_seed(5)
    a = views(x)
    torch.manual_seed(5)
    torch.testing.assert_close(views(x), a)


def test_images_crop_scales_content():
    # A horizontal ramp of slope 1/32 per pixel; a crop of half the width resized back to 32 halves the slope.
    ramp = ((torch.arange(32) + 0.5) / 32).expand(8, 3, 32, 32).contiguous()
    y = identity_views(crop_scale=(0.25, 0.25))(ramp, gen())
    slope = y[..., 2:-2].diff(dim=-1)  # away from the edge-clamped border pixels
    torch.testing.assert_close(slope, torch.full_like(slope, 0.5 / 32))
    # ...and each crop is a 16-pixel window at its own offset inside the image.
    left = y[:, 0, 0, 2] - 2 * slope[:, 0, 0, 0]  # value at output x=0 continued from the interior
    window_start = left * 32 - 0.25  # output pixel 0 samples input x = start + 0.25
    assert window_start.min() >= -1e-4 and window_start.max() <= 16 + 1e-4
    assert len(set(window_start.round().tolist())) > 1


def test_images_grayscale():
    x = colourful(16)
    y = identity_views(grayscale_p=1.0)(x, gen())
    torch.testing.assert_close(y[:, 0], y[:, 1])
    torch.testing.assert_close(y[:, 0], y[:, 2])
    torch.testing.assert_close(y[:, :1], 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:])
    # With p = 1/2, the examples hit are grey and the others untouched.
    y = identity_views(grayscale_p=0.5)(x, gen())
    grey = (y[:, 0] == y[:, 1]).flatten(1).all(1) & (y[:, 1] == y[:, 2]).flatten(1).all(1)
    assert 0 < grey.sum() < 16
    torch.testing.assert_close(y[~grey], x[~grey])
    # Grey input is left alone.
    x1 = colourful(4, channels=1)
    torch.testing.assert_close(identity_views(grayscale_p=1.0)(x1, gen()), x1)


def test_images_blur_reduces_high_frequencies():
    x = colourful(16)

    def high_freq_energy(img: torch.Tensor) -> torch.Tensor:
        return img.diff(dim=-1).square().flatten(1).sum(1) + img.diff(dim=-2).square().flatten(1).sum(1)

    y = identity_views(blur_p=1.0, blur_sigma=(1.0, 2.0))(x, gen())
    assert (high_freq_energy(y) < 0.3 * high_freq_energy(x)).all()
    assert y.flatten(1).mean(1).sub(x.flatten(1).mean(1)).abs().max() < 0.02  # a normalised kernel keeps the mean
    # The smallest sigma of the recipe is (nearly) the identity.
    torch.testing.assert_close(identity_views(blur_p=1.0, blur_sigma=(0.1, 0.1))(x, gen()), x)


def test_images_flip():
    x = colourful()
    torch.testing.assert_close(identity_views(flip_p=1.0)(x, gen()), x.flip(-1))


def test_images_brightness_is_multiplicative_per_example():
    x = colourful(16) * 0.5  # no clamping at factors <= 1.4
    y = identity_views(jitter=(0.4, 0.0, 0.0, 0.0), jitter_p=1.0)(x, gen())
    factor = y / x
    per_example = factor.flatten(1)
    torch.testing.assert_close(per_example, per_example[:, :1].expand_as(per_example))
    assert per_example[:, 0].min() >= 0.6 and per_example[:, 0].max() <= 1.4
    assert per_example[:, 0].unique().numel() == 16


def test_images_jitter_order_and_definitions_per_example():
    # torchvision's definitions, applied in each example's own order (the order is the rank of its random keys).
    views = identity_views(jitter=(0.4, 0.4, 0.0, 0.0))
    x = colourful(2) * 0.9
    u = torch.tensor([[1.0, 0.0, 0.5, 0.5]] * 2)  # brightness factor 1.4, contrast factor 0.6
    keys = torch.tensor([[0.1, 0.9, 0.5, 0.5], [0.9, 0.1, 0.5, 0.5]])  # example 0: brightness first; 1: contrast first

    def brightness(img):
        return (img * 1.4).clamp(0, 1)

    def contrast(img):
        grey_mean = (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]).mean()
        return (0.6 * img + 0.4 * grey_mean).clamp(0, 1)

    y = views._color_jitter(x, u, keys)
    torch.testing.assert_close(y[0], contrast(brightness(x[0])))
    torch.testing.assert_close(y[1], brightness(contrast(x[1])))
    assert not torch.allclose(y[0], brightness(contrast(x[0])))
    # Hue: a shift of 1/3 of the colour wheel turns pure red into pure green.
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1.0
    hue_u = torch.tensor([[0.5, 0.5, 0.5, 5 / 6]])  # shift = (2u - 1) * 0.5 = 1/3
    green = identity_views(jitter=(0.0, 0.0, 0.0, 0.5))._color_jitter(red, hue_u, torch.rand(1, 4))
    torch.testing.assert_close(green, red.roll(1, dims=1), atol=1e-5, rtol=0)


def test_images_jitter_keeps_grey_images_grey():
    # Hue and saturation are no-ops on grey; brightness and contrast keep the three channels equal.
    x = colourful(8, channels=1).expand(-1, 3, -1, -1)
    y = identity_views(jitter_p=1.0)(x, gen())
    torch.testing.assert_close(y[:, 0], y[:, 1], atol=1e-5, rtol=0)
    torch.testing.assert_close(y[:, 0], y[:, 2], atol=1e-5, rtol=0)
    assert not torch.allclose(y, x)


def best_time(call, warmup: int = 2, repeats: int = 3) -> float:
    """Best single-thread CPU time of `call`, after warm-up calls (a process's first calls page in kernels).

    CPU time on one thread, unlike wall time, does not grow when other jobs share the machine's cores.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for _ in range(warmup):
            call()
        times = []
        for _ in range(repeats):
            start = time.process_time()
            call()
            times.append(time.process_time() - start)
    finally:
        torch.set_num_threads(threads)
    return min(times)


def test_images_fast_on_a_batch_of_64():
    views, x = SimCLRImageViews(32), colourful(64)
    assert best_time(lambda: views(x, gen())) < 0.25


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(crop_scale=(0.0, 1.0)), "crop_scale"),
        (dict(crop_scale=(0.5, 1.5)), "crop_scale"),
        (dict(crop_scale=(0.8, 0.2)), "crop_scale"),
        (dict(crop_ratio=(0.0, 1.0)), "crop_ratio"),
        (dict(jitter=(0.4, 0.4, 0.4, 0.6)), "jitter"),
        (dict(jitter=(0.4, 0.4)), "jitter"),
        (dict(jitter_p=1.5), "jitter_p"),
        (dict(blur_sigma=(0.0, 2.0)), "blur_sigma"),
        (dict(flip_p=-0.1), "flip_p"),
    ],
)
def test_images_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SimCLRImageViews(32, **kwargs)


def test_images_bad_size_and_inputs():
    with pytest.raises(ValueError, match="size"):
        SimCLRImageViews(0)
    views = SimCLRImageViews(32)
    for bad in (torch.rand(3, 32, 32), torch.rand(2, 2, 32, 32), torch.randint(0, 255, (2, 3, 32, 32))):
        with pytest.raises(ValueError, match=r"x must be .*\[B, C, H, W\]"):
            views(bad)


# ------------------------------------------------------------------------------------------------------- spectrograms
def _contiguous_band(indices: torch.Tensor) -> bool:
    return indices.numel() == 0 or int(indices[-1] - indices[0]) + 1 == indices.numel()


def test_masking_zeroes_one_frequency_and_one_time_band_per_example():
    batch, channels, n_freq, n_time, max_f, max_t = 256, 3, 32, 24, 20, 12
    x = torch.rand(batch, channels, n_freq, n_time) + 0.5  # no zeros of its own
    y = SpectralMaskingViews(max_f, max_t).mask(x, gen())
    assert y.shape == x.shape and y.dtype == x.dtype
    zero = y == 0
    widths_f, widths_t = [], []
    for b in range(batch):
        rows = zero[b].all(dim=2).all(dim=0).nonzero().flatten()  # frequency bins zeroed at every time, every channel
        cols = zero[b].all(dim=1).all(dim=0).nonzero().flatten()  # frames zeroed at every frequency, every channel
        assert _contiguous_band(rows) and _contiguous_band(cols)
        expected = torch.zeros(n_freq, n_time, dtype=torch.bool)
        expected[rows, :] = True
        expected[:, cols] = True
        assert torch.equal(zero[b], expected.expand(channels, -1, -1))  # nothing else is zeroed, same for all channels
        torch.testing.assert_close(y[b][~zero[b]], x[b][~zero[b]])
        # nlpaug's offset is drawn from [0, bins - width), so a band never reaches the last bin.
        assert rows.numel() == 0 or rows[-1] < n_freq - 1
        assert cols.numel() == 0 or cols[-1] < n_time - 1
        widths_f.append(rows.numel())
        widths_t.append(cols.numel())
    # Widths ~ U{0, ..., max - 1}: both ends are reached over 256 examples, and max never.
    assert min(widths_f) == 0 and max(widths_f) == max_f - 1
    assert min(widths_t) == 0 and max(widths_t) == max_t - 1


@pytest.mark.parametrize("max_mask", [0, 1])
def test_masking_with_max_0_or_1_masks_nothing(max_mask):
    x = torch.rand(32, 2, 16, 16) + 0.5
    torch.testing.assert_close(SpectralMaskingViews(max_mask, max_mask)(x, gen()), x)


def test_masking_works_on_power_spectrograms_of_any_dtype():
    power = torch.randint(1, 100, (8, 1, 64, 64))
    y = SpectralMaskingViews(40, 40).mask(power, gen())
    assert y.dtype == power.dtype and (y == 0).any()


def test_masking_reproducible_and_independent():
    views, x = SpectralMaskingViews(20, 20, noise_std=0.25), torch.rand(1, 4, 32, 32).expand(16, -1, -1, -1)
    g = gen(1)
    first, second = views(x, g), views(x, g)
    torch.testing.assert_close(views(x, gen(1)), first)
    assert not torch.equal(first, second)
    masks = (SpectralMaskingViews(20, 20).mask(x + 1, gen(2)) == 0).flatten(1)
    assert torch.unique(masks, dim=0).shape[0] > 8  # the bands differ across the examples of a batch


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_noise_has_the_configured_std(dtype):
    x = torch.zeros(64, 2, 32, 32, dtype=dtype)
    y = SpectralMaskingViews(0, 0, noise_std=0.25)(x, gen())
    assert y.dtype == dtype
    assert abs(y.float().std().item() - 0.25) < 0.01
    # One std per channel (the original Pamap2 'spectral_noise', docs/method.md §4.4).
    y = SpectralMaskingViews(0, 0, noise_std=[0.5, 2.0]).add_noise(x, gen())
    assert abs(y[:, 0].float().std().item() - 0.5) < 0.02 and abs(y[:, 1].float().std().item() - 2.0) < 0.08
    # noise_std 0 adds nothing.
    assert SpectralMaskingViews(0, 0).add_noise(x, gen()) is x


def test_masking_bad_arguments():
    with pytest.raises(ValueError, match="max_freq_mask"):
        SpectralMaskingViews(max_freq_mask=-1)
    with pytest.raises(ValueError, match="max_time_mask"):
        SpectralMaskingViews(max_time_mask=2.5)
    with pytest.raises(ValueError, match="noise_std"):
        SpectralMaskingViews(noise_std=-0.1)
    views = SpectralMaskingViews(40, 40)
    with pytest.raises(ValueError, match="max_freq_mask=40 exceeds the 32 frequency bins"):
        views(torch.rand(2, 1, 32, 64))
    with pytest.raises(ValueError, match="max_time_mask=40 exceeds the 32 time bins"):
        views(torch.rand(2, 1, 64, 32))
    with pytest.raises(ValueError, match=r"\[B, C, F, T\]"):
        views(torch.rand(2, 64, 64))
    with pytest.raises(ValueError, match="noise_std has 2 per-channel values"):
        SpectralMaskingViews(0, 0, noise_std=[0.1, 0.2])(torch.rand(2, 3, 8, 8))


# ---------------------------------------------------------------------------------------------------------- waveforms
def _kept_region(row: torch.Tensor) -> torch.Tensor:
    return row.nonzero().flatten()


def test_waveform_crop_keeps_length_and_one_contiguous_region():
    batch, n = 256, 4000
    x = torch.rand(batch, n) + 0.5
    y = WaveformCropNoiseViews(crop_scale=(0.08, 1.0), noise_scale=0.0)(x, gen())
    assert y.shape == x.shape and y.dtype == x.dtype
    fractions = []
    for b in range(batch):
        kept = _kept_region(y[b])
        assert _contiguous_band(kept)
        torch.testing.assert_close(y[b, kept], x[b, kept])  # kept in place, untouched
        assert kept[-1] < n - 1  # the original's start is drawn from [0, n - crop)
        fractions.append(kept.numel() / n)
    assert min(fractions) >= 0.08 - 1 / n and max(fractions) <= 1.0
    assert min(fractions) < 0.2 and max(fractions) > 0.9  # spread over the range


def test_waveform_crop_scale_range_is_respected():
    y = WaveformCropNoiseViews(crop_scale=(0.3, 0.5), noise_scale=0.0)(torch.ones(128, 1000), gen())
    kept = (y != 0).sum(1)
    assert kept.min() >= 300 and kept.max() <= 500


def test_waveform_noise_amplitude():
    batch, n = 64, 4096
    views = WaveformCropNoiseViews(crop_scale=(1.0, 1.0), noise_scale=2.0)
    noise = views(torch.zeros(batch, n), gen())
    # irfft of N(0, scale^2) real spectrum coefficients: std scale / sqrt(n) per sample.
    assert noise.std().item() == pytest.approx(2.0 / math.sqrt(n), rel=0.03)
    # Real coefficients make it mirror-symmetric, as in the original.
    torch.testing.assert_close(noise[:, 1:], noise[:, 1:].flip(-1))
    # With lengths: std 1/sqrt(length) over each example's real samples, nothing in its padding.
    lengths = torch.tensor([1000, 4096] * (batch // 2))
    noise = WaveformCropNoiseViews(crop_scale=(1.0, 1.0))(torch.zeros(batch, n), gen(), lengths=lengths)
    short = noise[lengths == 1000]
    assert short[:, :1000].std().item() == pytest.approx(1 / math.sqrt(1000), rel=0.03)
    assert (short[:, 1000:] == 0).all()
    assert noise[lengths == n].std().item() == pytest.approx(1 / math.sqrt(n), rel=0.03)


def test_waveform_crop_within_lengths():
    lengths = torch.tensor([100, 500, 1000, 1000])
    x = torch.ones(4, 1000)
    y = WaveformCropNoiseViews(crop_scale=(0.5, 0.5), noise_scale=0.0)(x, gen(), lengths=lengths)
    for b, length in enumerate(lengths.tolist()):
        kept = _kept_region(y[b])
        assert kept.numel() == length // 2 and kept[-1] < length


def test_waveform_random_order_per_example():
    # Crop-then-noise keeps noise outside the crop; noise-then-crop zeroes it there. Both happen in a batch of 64.
    n = 2000
    y = WaveformCropNoiseViews(crop_scale=(0.2, 0.5))(torch.ones(64, n), gen())
    inside = y > 0.5
    outside_has_noise = [bool((y[b][~inside[b]] != 0).all()) for b in range(64)]
    outside_is_zero = [bool((y[b][~inside[b]] == 0).all()) for b in range(64)]
    assert all(a != b for a, b in zip(outside_has_noise, outside_is_zero))  # exactly one of the two per example
    assert 0 < sum(outside_has_noise) < 64


def test_waveform_reproducible_independent_and_dtype():
    views = WaveformCropNoiseViews()
    x = torch.randn(1, 3000).expand(8, -1)
    g = gen(4)
    first, second = views(x, g), views(x, g)
    torch.testing.assert_close(views(x, gen(4)), first)
    assert not torch.equal(first, second)
    assert torch.unique(first, dim=0).shape[0] == 8
    for dtype in (torch.float64, torch.bfloat16):
        assert views(x.to(dtype), gen()).dtype == dtype


def test_waveform_bad_arguments():
    for scale in ((0.0, 1.0), (0.5, 1.2), (0.9, 0.1)):
        with pytest.raises(ValueError, match="crop_scale"):
            WaveformCropNoiseViews(crop_scale=scale)
    with pytest.raises(ValueError, match="noise_scale"):
        WaveformCropNoiseViews(noise_scale=-1.0)
    views = WaveformCropNoiseViews()
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        views(torch.zeros(2, 1, 100))
    with pytest.raises(ValueError, match="lengths"):
        views(torch.zeros(2, 100), lengths=torch.tensor([1, 2, 3]))


def test_all_views_fast_on_cpu():
    images, spectra, waves = colourful(64), torch.rand(64, 1, 64, 64), torch.randn(64, 16000)
    calls = [
        lambda: SimCLRImageViews(32)(images, gen()),
        lambda: SpectralMaskingViews(40, 40, 0.25)(spectra, gen()),
        lambda: WaveformCropNoiseViews()(waves, gen()),
    ]
    assert best_time(lambda: [call() for call in calls]) < 0.5


# --------------------------------------------------------------------------------------------------------------- IMU
def imu_windows(batch: int = 64, channels: int = 6, length: int = 100) -> torch.Tensor:
    return torch.randn(batch, channels, length, generator=gen(3)) * torch.linspace(0.5, 4.0, channels)[:, None]


def test_imu_rotation_keeps_each_triplets_norm_and_turns_both_triplets_alike():
    x = imu_windows()
    rotated = ImuViews(max_rotation_degrees=90).rotate(x, gen())
    triplets, turned = x.reshape(64, 2, 3, 100), rotated.reshape(64, 2, 3, 100)
    torch.testing.assert_close(turned.norm(dim=2), triplets.norm(dim=2))
    # One matrix per example, solved from the accelerometer triplet, also maps the gyroscope triplet.
    rotation = torch.linalg.lstsq(triplets[:, 0].transpose(1, 2), turned[:, 0].transpose(1, 2)).solution
    torch.testing.assert_close(triplets[:, 1].transpose(1, 2) @ rotation, turned[:, 1].transpose(1, 2))
    eye = torch.eye(3).expand(64, 3, 3)
    torch.testing.assert_close(rotation.transpose(1, 2) @ rotation, eye, atol=1e-4, rtol=0)
    angles = torch.rad2deg(torch.arccos(((rotation.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)))
    assert float(angles.max()) <= 90.01 and float(angles.std()) > 10  # random angles within the bound
    assert torch.equal(ImuViews(max_rotation_degrees=0).rotate(x, gen()), x)


def test_imu_scaling_and_jitter_statistics():
    x = imu_windows(batch=512)
    scaled = ImuViews(scale_std=0.2).scale(x, gen())
    factors = (scaled / x)[..., 0]
    assert torch.allclose(scaled / x, factors[..., None].expand_as(x), atol=1e-4)  # one factor per channel
    assert abs(float(factors.mean()) - 1) < 0.02 and abs(float(factors.std()) - 0.2) < 0.01
    noise = ImuViews(jitter_std=0.1).jitter(x, gen()) - x
    relative = noise / x.std(dim=-1, keepdim=True, correction=0)
    assert abs(float(relative.mean())) < 0.002 and abs(float(relative.std()) - 0.1) < 0.002


def test_imu_views_reproducible_independent_and_refuse_other_channel_counts():
    x = imu_windows(batch=4)
    views = ImuViews()
    first = views(x, gen(7))
    assert first.shape == x.shape and first.dtype == x.dtype
    assert torch.equal(first, views(x, gen(7))) and not torch.equal(first, views(x, gen(8)))
    assert not torch.allclose(first[0] - x[0], first[1] - x[1])  # each example its own parameters
    with pytest.raises(ValueError, match=r"52 channels, not a multiple of 3.*--num_channels.*--expert_views"):
        views(torch.randn(2, 52, 100))
    for kwargs in ({"max_rotation_degrees": 200}, {"scale_std": -1}, {"jitter_std": float("nan")}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            ImuViews(**kwargs)
