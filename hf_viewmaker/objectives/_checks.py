"""Argument checks the objectives share."""

import math


def positive_temperature(temperature: float) -> float:
    """`temperature` as a float, or a `ValueError` naming it unless it is a finite positive number."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < math.inf:
        raise ValueError(f"temperature must be a finite positive number (e.g. 0.07), got {temperature!r}")
    return float(temperature)
