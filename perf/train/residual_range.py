#!/usr/bin/env python3
"""How much a quantizer's own error-feedback residual widens its block step
(src/tuner/README.md section 7), simulated against the bound the gain model
takes. Blocks of 256 values of a fresh g each call (the residual carried, as
sqz's error feedback does), stochastic rounding to L = 2^bits - 1 steps of
(max - min) / L; prints mean delta^2 of g + e over mean delta^2 of g alone.
  /usr/bin/python3 perf/train/residual_range.py        (numpy; ~10 s)"""
import numpy as np

BLOCK, BLOCKS, CALLS, WARMUP = 256, 400, 200, 50


def widening(bits, draw, rng):
    L = 2 ** bits - 1
    e = np.zeros((BLOCKS, BLOCK))
    with_residual, alone = [], []
    for call in range(CALLS):
        g = draw()
        y = g + e
        lo, hi = y.min(1, keepdims=True), y.max(1, keepdims=True)
        delta = (hi - lo) / L
        code = np.floor((y - lo) / delta + rng.random(y.shape))
        e = y - (lo + code * delta)
        if call >= WARMUP:
            with_residual.append(((hi - lo)[:, 0] ** 2).mean())
            alone.append(((g.max(1) - g.min(1)) ** 2).mean())
    return np.mean(with_residual) / np.mean(alone)


def main():
    rng = np.random.default_rng(1)
    shape = (BLOCKS, BLOCK)
    common = rng.standard_normal(shape)
    draws = [
        ("normal", lambda: rng.standard_normal(shape)),
        ("Laplace", lambda: rng.laplace(size=shape)),
        ("Student t, 3 dof", lambda: rng.standard_t(3, size=shape)),
        ("normal, drift + noise (nu = 2.5)", lambda: 0.53 * common + 0.85 * rng.standard_normal(shape)),
        ("t3, each block its own scale", lambda: rng.standard_t(3, size=shape) * np.exp(rng.standard_normal((BLOCKS, 1)))),
    ]
    print("| g per block | q2 | q4 | q8 |")
    print("|---|---|---|---|")
    for name, draw in draws:
        print("| %s | %s |" % (name, " | ".join("%.3f" % widening(b, draw, rng) for b in (2, 4, 8))))
    print("| bound (L / (L - 2))^2 | %s |" % " | ".join("%.3f" % ((2 ** b - 1) / (2 ** b - 3)) ** 2 for b in (2, 4, 8)))


if __name__ == "__main__":
    main()
