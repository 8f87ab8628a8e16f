"""The service's seeded draws in Python (service/src/noise.rs): a SplitMix64 stream, uniforms of 53
bits, and standard normals by Box–Muller from pairs of 24-bit uniforms (radius from the first, angle
from the second). The service computes Box–Muller's logarithm, sine and cosine by short polynomials
in float32 (errors below 1e-7); here they are NumPy's, in float64."""

import numpy as np

GOLDEN = 0x9E3779B97F4A7C15
MASK = (1 << 64) - 1


class Draws:
    """A SplitMix64 stream seeded like `Noise::new(seed)`."""

    def __init__(self, seed):
        self.state = seed & MASK

    def u64(self, count):
        """The next `count` outputs, uint64."""
        steps = np.arange(1, count + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            z = np.uint64(self.state) + steps * np.uint64(GOLDEN)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        self.state = (self.state + count * GOLDEN) & MASK
        return z ^ (z >> np.uint64(31))

    def uniform(self, count=None):
        """Uniforms in [0, 1), 53 bits (`Noise::uniform`); one float when `count` is None."""
        values = (self.u64(1 if count is None else count) >> np.uint64(11)).astype(np.float64) / 2.0**53
        return float(values[0]) if count is None else values

    def normal(self, count):
        """`count` standard normals (`Noise::fill_normal`): one pair of 24-bit uniforms per two."""
        pairs = (count + 1) // 2
        bits = (self.u64(2 * pairs) >> np.uint64(40)).astype(np.float64) / 2.0**24
        radius = np.sqrt(-2.0 * np.log(1.0 - bits[0::2]))
        turn = 2.0 * np.pi * bits[1::2]
        return np.stack([radius * np.cos(turn), radius * np.sin(turn)], axis=1).reshape(-1)[:count]
