"""The SimCLR-style "expert" image views of the paper's CIFAR-10 baseline (docs/method.md §4.1), batched on any device.

The original applied, per image, with torchvision transforms on PIL images::

    RandomResizedCrop(32, scale=(0.2, 1.0)) -> RandomApply(ColorJitter(0.4, 0.4, 0.4, 0.1), p=0.8)
    -> RandomGrayscale(0.2) -> RandomApply(GaussianBlur(sigma ~ U[0.1, 2.0]) on PIL, p=0.5)
    -> RandomHorizontalFlip(0.5) -> ToTensor -> Normalize

`SimCLRImageViews` is that recipe up to and including the flip, on float images in [0, 1], with every random parameter
drawn independently per example. It stops before `Normalize`: in this project the normalisation comes after the
viewmaker (docs/method.md §4.1, the `all_unnorm` variant).

Randomness: kornia's augmentation classes draw from the global torch RNG and take no `torch.Generator`, so the
parameters are drawn here with `torch.rand(..., generator=generator)` and applied with kornia's (deterministic)
functional operations: `kornia.enhance` for contrast, saturation and hue, `kornia.color.rgb_to_grayscale`, and a
separable Gaussian filter with one sigma per example (`kornia.filters.get_gaussian_kernel1d`, `filter2d_separable`).
The crop is a per-example affine resampling (`torch.nn.functional.grid_sample`) and brightness and flip are plain tensor
operations, written to match torchvision's semantics exactly. Nothing is read back to the host, so views made on an
accelerator never stall it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale
from kornia.enhance import adjust_contrast_with_mean_subtraction, adjust_hue, adjust_saturation_with_gray_subtraction
from kornia.filters import filter2d_separable, get_gaussian_kernel1d
from torch import nn

from .sampling import uniform

# torchvision's RandomResizedCrop retries this many (area, aspect) draws before falling back to a centre crop.
_CROP_ATTEMPTS = 10


def _pair(
    name: str, value: Sequence[float], low: float, high: float, low_inclusive: bool = True
) -> tuple[float, float]:
    """Validate a (min, max) range that must lie in [low, high] (or (low, high] when not `low_inclusive`)."""
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (min, max) pair of numbers, got {value!r}") from None
    above_low = (a >= low) if low_inclusive else (a > low)
    if not (above_low and a <= b <= high):
        interval = f"{'[' if low_inclusive else '('}{low}, {high}]"
        raise ValueError(f"{name} must satisfy min <= max within {interval}, got {value!r}")
    return a, b


def _probability(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


class SimCLRImageViews(nn.Module):
    """RandomResizedCrop -> ColorJitter (p) -> RandomGrayscale -> GaussianBlur (p) -> HorizontalFlip, batched.

    The defaults are the CIFAR-10 expert recipe of docs/method.md §4.1 (itself SimCLR's); only `size` has to be given
    (32 for CIFAR-10).

    Args:
        size: output height and width (an int for a square output). The crop is resized to it, so the output is
            [B, C, *size] whatever the input's H and W (for CIFAR-10 the input is already 32 x 32).
        crop_scale: range of the crop's area as a fraction of the input's area, within (0, 1] (§4.1: (0.2, 1.0)).
        crop_ratio: range of the crop's aspect ratio w / h, sampled log-uniformly; torchvision's default
            (3/4, 4/3), which the original used implicitly.
        jitter: (brightness, contrast, saturation, hue) strengths as in torchvision's ColorJitter (§4.1:
            (0.4, 0.4, 0.4, 0.1)): the first three factors are drawn from U[max(0, 1 - s), 1 + s], the hue shift from
            U[-h, h] in fractions of the colour wheel (h <= 0.5). A strength of 0 disables that adjustment.
        jitter_p: probability of applying the colour jitter to an example (§4.1: 0.8).
        grayscale_p: probability of converting an example to grey (ITU-R 601 luma, replicated over the 3 channels)
            (§4.1: 0.2).
        blur_p: probability of blurring an example (§4.1: 0.5).
        blur_sigma: range of the blur's standard deviation in pixels, sigma ~ U[min, max] (§4.1: (0.1, 2.0)).
        flip_p: probability of a horizontal flip (§4.1: 0.5).

    Faithfulness notes:

    * The four jitter adjustments are applied in an independent random order per example, as torchvision's
      ColorJitter does per call (kornia's ColorJitter would share one order across the batch). Brightness is
      multiplicative (``clamp(x * f, 0, 1)``), contrast blends with the mean grey level of the image, saturation with
      its grey version, and hue rotates the HSV hue: torchvision's definitions, here on floats rather than 8-bit PIL
      images, so without the original's rounding to 1/255.
    * Blur kernel: the original blurred with PIL's ``ImageFilter.GaussianBlur(radius=sigma)``, which has no kernel size
      (it approximates the Gaussian with repeated box filters spanning about ±3 sigma, edges extended). Here it is a
      true Gaussian of ``2 * ceil(3 * max_sigma) + 1`` taps (13 for sigma <= 2), which holds 99.7 % of the widest
      Gaussian's mass so that no sigma is truncated, with replicated edges like PIL. torchvision's own GaussianBlur or
      SimCLR's 10 %-of-the-image kernel (3 taps at 32 px) would cut off the larger sigmas.
    * The crop is resampled bilinearly with pixel-area alignment (``align_corners=False``), like PIL's resize when
      upscaling, which is always the case for CIFAR-10 (a crop of a 32 x 32 image resized to 32 x 32). When a crop is
      larger than `size` (inputs larger than the output) it is not anti-aliased, unlike PIL.

    Input channels: 3 (RGB) or 1 (grey). For 1-channel images the jitter is brightness and contrast only (saturation
    and hue are undefined on grey, and torchvision skips them on "L" images too) and the grayscale step is a no-op.

    Randomness: every parameter is drawn per example with ``torch.rand(generator=generator)`` (see the module
    docstring), so a seeded generator gives the same views on every call; without one the global RNG of the data's
    device is used. Parameters are drawn in a fixed order whatever their probabilities, on the generator's device.
    """

    def __init__(
        self,
        size: int | tuple[int, int],
        crop_scale: tuple[float, float] = (0.2, 1.0),
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1),
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        blur_p: float = 0.5,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        flip_p: float = 0.5,
    ):
        super().__init__()
        sizes = (size, size) if isinstance(size, int) else tuple(size)
        if len(sizes) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
            raise ValueError(f"size must be a positive int or a (height, width) pair of them, got {size!r}")
        self.size: tuple[int, int] = sizes
        self.crop_scale = _pair("crop_scale", crop_scale, 0.0, 1.0, low_inclusive=False)
        self.crop_ratio = _pair("crop_ratio", crop_ratio, 0.0, math.inf, low_inclusive=False)
        try:
            brightness, contrast, saturation, hue = (float(v) for v in jitter)
        except (TypeError, ValueError):
            raise ValueError(
                f"jitter must be (brightness, contrast, saturation, hue) numbers, got {jitter!r}"
            ) from None
        if min(brightness, contrast, saturation) < 0 or not 0 <= hue <= 0.5:
            raise ValueError(f"jitter strengths must be >= 0 with hue <= 0.5 (half the colour wheel), got {jitter!r}")
        self.jitter = (brightness, contrast, saturation, hue)
        self.jitter_p = _probability("jitter_p", jitter_p)
        self.grayscale_p = _probability("grayscale_p", grayscale_p)
        self.blur_p = _probability("blur_p", blur_p)
        self.blur_sigma = _pair("blur_sigma", blur_sigma, 0.0, math.inf, low_inclusive=False)
        self.flip_p = _probability("flip_p", flip_p)
        # ±3 sigma of the widest blur, odd (see the class docstring).
        self.blur_kernel_size = 2 * math.ceil(3 * self.blur_sigma[1]) + 1

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, crop_scale={self.crop_scale}, crop_ratio={self.crop_ratio}, jitter={self.jitter}, "
            f"jitter_p={self.jitter_p}, grayscale_p={self.grayscale_p}, blur_p={self.blur_p}, "
            f"blur_sigma={self.blur_sigma}, blur_kernel_size={self.blur_kernel_size}, flip_p={self.flip_p}"
        )

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """
        Args:
            x: images [B, C, H, W] with C = 3 (RGB) or 1, floating point, values in [0, 1], on any device.
            generator: optional source of randomness (on any device, see the class docstring).

        Returns:
            The views, [B, C, *self.size], same dtype and device as `x`, values in [0, 1], not normalised.
        """
        if not torch.is_tensor(x) or x.ndim != 4 or x.shape[1] not in (1, 3) or not x.is_floating_point():
            raise ValueError(
                "x must be a floating-point [B, C, H, W] image batch with C = 3 or 1, got "
                + (f"{x.dtype} of shape {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__)
            )
        batch, device = x.shape[0], x.device
        # kornia's colour conversions and blur want float32/64; half-precision inputs go through float32.
        work = x if x.dtype in (torch.float32, torch.float64) else x.float()

        def draw(*shape: int, low: float = 0.0, high: float = 1.0) -> torch.Tensor:
            return uniform(shape, generator, device, low, high).to(work.dtype)

        # Every parameter is drawn up front, in a fixed order, so that the stream consumed from the generator does not
        # depend on the probabilities or on which examples are hit.
        crop_u = draw(batch, 4 * _CROP_ATTEMPTS)
        jitter_factors = draw(batch, 4)
        jitter_order_keys = draw(batch, 4)
        apply_jitter = draw(batch) < self.jitter_p
        apply_gray = draw(batch) < self.grayscale_p
        sigma = draw(batch, low=self.blur_sigma[0], high=self.blur_sigma[1])
        apply_blur = draw(batch) < self.blur_p
        apply_flip = draw(batch) < self.flip_p

        out = self._resized_crop(work, crop_u)
        out = torch.where(_per_example(apply_jitter), self._color_jitter(out, jitter_factors, jitter_order_keys), out)
        if out.shape[1] == 3:
            gray = rgb_to_grayscale(out).expand_as(out)
            out = torch.where(_per_example(apply_gray), gray, out)
        # PIL's radius is one sigma for both axes; PIL extends the edge pixels, hence "replicate". (What kornia's
        # gaussian_blur2d computes, without its check that sigma > 0, which reads sigma on the host.)
        kernel = get_gaussian_kernel1d(self.blur_kernel_size, sigma[:, None])
        blurred = filter2d_separable(out, kernel, kernel, border_type="replicate")
        out = torch.where(_per_example(apply_blur), blurred, out)
        out = torch.where(_per_example(apply_flip), out.flip(-1), out)
        return out.to(x.dtype)

    def _resized_crop(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """torchvision's RandomResizedCrop, per example: `u` [B, 4 * attempts] holds the uniforms of every draw."""
        batch, _, height, width = x.shape
        area_u, ratio_u, top_u, left_u = u.view(batch, 4, _CROP_ATTEMPTS).unbind(1)
        # torchvision's get_params: up to 10 (area, log-uniform aspect) draws, the first that fits is kept...
        target_area = height * width * (self.crop_scale[0] + (self.crop_scale[1] - self.crop_scale[0]) * area_u)
        log_lo, log_hi = math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * ratio_u)
        crop_w = torch.round(torch.sqrt(target_area * aspect))
        crop_h = torch.round(torch.sqrt(target_area / aspect))
        fits = (crop_w > 0) & (crop_w <= width) & (crop_h > 0) & (crop_h <= height)
        first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # the first fitting attempt (0 when none fits)
        crop_w, crop_h = crop_w.gather(1, first)[:, 0], crop_h.gather(1, first)[:, 0]
        # Uniform integer offsets; the clamps only catch float rounding u * n up to n for u just below 1.
        top = torch.minimum(torch.floor(top_u.gather(1, first)[:, 0] * (height - crop_h + 1)), height - crop_h)
        left = torch.minimum(torch.floor(left_u.gather(1, first)[:, 0] * (width - crop_w + 1)), width - crop_w)
        # ...and when none fits, a centre crop of the whole image with its aspect ratio clamped to crop_ratio.
        in_ratio = width / height
        if in_ratio < self.crop_ratio[0]:
            fallback_w, fallback_h = width, round(width / self.crop_ratio[0])
        elif in_ratio > self.crop_ratio[1]:
            fallback_w, fallback_h = round(height * self.crop_ratio[1]), height
        else:
            fallback_w, fallback_h = width, height
        any_fits = fits.any(dim=1)
        crop_w = torch.where(any_fits, crop_w, fallback_w)
        crop_h = torch.where(any_fits, crop_h, fallback_h)
        top = torch.where(any_fits, top, (height - fallback_h) // 2)
        left = torch.where(any_fits, left, (width - fallback_w) // 2)

        # The affine map from output to input normalised coordinates (align_corners=False) that sends the output's
        # pixel areas onto the crop box's pixels [left, left + crop_w) x [top, top + crop_h), as PIL's resize does.
        theta = torch.zeros(batch, 2, 3, dtype=x.dtype, device=x.device)
        theta[:, 0, 0] = crop_w / width
        theta[:, 0, 2] = (2 * left + crop_w) / width - 1
        theta[:, 1, 1] = crop_h / height
        theta[:, 1, 2] = (2 * top + crop_h) / height - 1
        grid = F.affine_grid(theta, [batch, x.shape[1], *self.size], align_corners=False)
        # "border" clamps the half-pixel overhang at the crop's edges to the edge pixel, like PIL.
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _color_jitter(self, x: torch.Tensor, u: torch.Tensor, order_keys: torch.Tensor) -> torch.Tensor:
        """torchvision's ColorJitter per example: `u` [B, 4] gives the four factors, `order_keys` [B, 4] the order."""
        brightness, contrast, saturation, hue = self.jitter

        def factor(strength: float, column: int) -> torch.Tensor:
            low = max(0.0, 1.0 - strength)
            return low + (1.0 + strength - low) * u[:, column]

        ops: list[tuple[int, Callable[[torch.Tensor], torch.Tensor]]] = []
        if brightness > 0:
            f_b = factor(brightness, 0)[:, None, None, None]
            ops.append((0, lambda img: (img * f_b).clamp(0.0, 1.0)))
        if contrast > 0:
            f_c = factor(contrast, 1)
            ops.append((1, lambda img: adjust_contrast_with_mean_subtraction(img, f_c)))
        if x.shape[1] == 3 and saturation > 0:
            f_s = factor(saturation, 2)
            ops.append((2, lambda img: adjust_saturation_with_gray_subtraction(img, f_s)))
        if x.shape[1] == 3 and hue > 0:
            # A shift of h in fractions of the colour wheel is 2*pi*h radians for kornia.
            shift = (2.0 * u[:, 3] - 1.0) * hue * 2.0 * math.pi
            ops.append((3, lambda img: adjust_hue(img, shift)))
        if not ops:
            return x
        # A random permutation of the enabled adjustments per example: rank of each example's random keys.
        # (Stacked columns rather than a device index tensor, whose copy from the host would wait for the device.)
        keys = torch.stack([order_keys[:, column] for column, _ in ops], dim=1)
        order = keys.argsort(dim=1)  # [B, n_ops]: which op each example applies at each step
        rows = torch.arange(x.shape[0], device=x.device)
        for step in range(len(ops)):
            # Every op runs on the whole batch and each example keeps the one its order names at this step: a
            # data-dependent subset would need a host sync.
            candidates = torch.stack([op(x) for _, op in ops])  # [n_ops, B, C, H, W]
            x = candidates[order[:, step], rows]
        return x


def _per_example(flags: torch.Tensor) -> torch.Tensor:
    """[B] booleans -> [B, 1, 1, 1], to select whole images with torch.where."""
    return flags[:, None, None, None]
