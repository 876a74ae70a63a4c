"""Time-domain "expert" views of wearable IMU windows: random rotation, per-channel scaling and jitter.

These are the augmentations the human-activity-recognition literature found strongest for wrist and body-worn sensors
(Um et al. 2017, "Data augmentation of wearable sensor data for Parkinson's disease monitoring using convolutional
neural networks"), acting on the raw windows ``[B, C, T]`` before the spectrogram front end:

* **rotation**: one random 3-D rotation per example, applied to every consecutive triplet of channels (an
  accelerometer's ax ay az, then a gyroscope's wx wy wz, ...). The sensors of one device are rigidly mounted
  together, so when the device sits differently on the body all its triplets turn by the same rotation;
* **scaling**: each channel multiplied by its own factor ~ N(1, scale_std^2), a sensor's gain or a stronger or weaker
  movement;
* **jitter**: additive Gaussian noise whose std is `jitter_std` times the window's own std in that channel, so that it
  is as strong, relative to the signal, in a quiet accelerometer channel as in a busy gyroscope one.

The rotation must act on the physical axes: applied to per-channel standardised windows it would mix channels of
different scales. The pipelines therefore apply these views to the raw windows, before any standardisation.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .sampling import normal, uniform


def _non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def rotation_matrices(axes: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotations ``[B, 3, 3]`` by ``angles`` ``[B]`` (radians) about the unit ``axes`` ``[B, 3]`` (Rodrigues' formula
    ``I + sin(a) K + (1 - cos(a)) K^2``, ``K`` the cross-product matrix of the axis)."""
    x, y, z = axes.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(-1, 3, 3)
    sin, cos = angles.sin()[:, None, None], angles.cos()[:, None, None]
    eye = torch.eye(3, dtype=axes.dtype, device=axes.device)
    return eye + sin * cross + (1 - cos) * (cross @ cross)


class ImuViews(nn.Module):
    """Random rotation of every channel triplet (the same rotation for all of an example's triplets), per-channel
    scaling and jitter of IMU windows ``[B, C, T]`` (see the module docstring), with independent random parameters per
    example.

    Args:
        max_rotation_degrees: rotation angles are drawn uniformly from ``[-max, max]`` degrees about a uniformly random
            axis. The default, 30, models how a watch sits on different wrists and arms: turned a little around the
            wrist, tilted by a looser or tighter strap. Um et al. drew arbitrary rotations for a sensor that could be
            mounted any way up; on a wrist that would also hide the direction of gravity, which tells postures such as
            lying and standing apart.
        scale_std: std of the per-channel scaling factors ~ N(1, scale_std^2) (Um et al.'s 0.1 by default; 0 turns
            scaling off).
        jitter_std: std of the additive noise, relative to each window's std in each channel (0.05 by default, Um et
            al.'s jitter on standardised signals; 0 turns jitter off).

    Randomness: per example, 3 normals (the axis) and 1 uniform (the angle), then C normals (the scales), then C x T
    normals (the jitter), drawn with the given ``torch.Generator`` on its own device (then moved to the data's), or
    from the global RNG of the data's device without one.
    """

    def __init__(self, max_rotation_degrees: float = 30.0, scale_std: float = 0.1, jitter_std: float = 0.05):
        super().__init__()
        self.max_rotation_degrees = _non_negative("max_rotation_degrees", max_rotation_degrees)
        if self.max_rotation_degrees > 180:
            raise ValueError(f"max_rotation_degrees must be at most 180, got {max_rotation_degrees!r}")
        self.scale_std = _non_negative("scale_std", scale_std)
        self.jitter_std = _non_negative("jitter_std", jitter_std)

    def extra_repr(self) -> str:
        return (
            f"max_rotation_degrees={self.max_rotation_degrees}, scale_std={self.scale_std}, "
            f"jitter_std={self.jitter_std}"
        )

    def rotate(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """`x` ``[B, C, T]`` with each example's channel triplets rotated by one random rotation."""
        batch, channels, length = _check_windows(x)
        max_angle = math.radians(self.max_rotation_degrees)
        axes = normal((batch, 3), generator, x.device, torch.float32)
        # A normal vector's direction is uniform on the sphere; the clamp only guards a (measure-zero) zero draw.
        axes = axes / axes.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        angles = uniform((batch,), generator, x.device, -max_angle, max_angle)
        rotations = rotation_matrices(axes, angles).to(x.dtype)
        triplets = x.reshape(batch, channels // 3, 3, length)
        return torch.einsum("bij,bgjt->bgit", rotations, triplets).reshape(batch, channels, length)

    def scale(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """`x` ``[B, C, T]`` with each channel of each example multiplied by a factor ~ N(1, scale_std^2)."""
        batch, channels, _ = _check_windows(x)
        return x * (1 + self.scale_std * normal((batch, channels, 1), generator, x.device, x.dtype))

    def jitter(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """`x` ``[B, C, T]`` plus noise of std `jitter_std` times each window's (population) std per channel."""
        _check_windows(x)
        std = x.std(dim=-1, keepdim=True, correction=0)
        return x + self.jitter_std * std * normal(x.shape, generator, x.device, x.dtype)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """`rotate`, then `scale`, then `jitter` (the physical rotation first, the sensor's gain and noise after).

        Args:
            x: floating-point raw windows ``[B, C, T]`` with C a multiple of 3 (triplets of a device's sensors).
            generator: optional source of randomness.

        Returns:
            The views, same shape, dtype and device as `x`.
        """
        return self.jitter(self.scale(self.rotate(x, generator), generator), generator)


def _check_windows(x: torch.Tensor) -> tuple[int, int, int]:
    if not torch.is_tensor(x) or x.ndim != 3 or not x.is_floating_point():
        raise ValueError(
            "x must be a floating-point [B, C, T] batch of sensor windows, got "
            + (f"{x.dtype} of shape {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__)
        )
    if x.shape[1] % 3:
        raise ValueError(
            f"imu views rotate triplets of channels (ax ay az, wx wy wz, ...), but x {tuple(x.shape)} has "
            f"{x.shape[1]} channels, not a multiple of 3: check --num_channels and the data, or choose another "
            "--expert_views"
        )
    return tuple(x.shape)
