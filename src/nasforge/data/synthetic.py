"""Generated data sets for tests and benchmarks: real training, no download, known difficulty.

``make_sequences`` draws 1-D signals whose class is the *order* of two short motifs (sine bursts
of class-specific frequencies) at random positions in noise: a network must find local patterns
anywhere and relate them, which convolutions with global pooling do and a flat MLP does poorly.
"""

from __future__ import annotations

import itertools

import numpy as np

FREQUENCIES = (2.0, 3.5, 5.0, 7.0, 9.5)  # cycles per motif


def make_sequences(n: int, *, length: int = 128, classes: int = 10, noise: float = 0.6, motif: int = 24,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` signals ``(n, 1, length)`` float32 and labels ``(n,)``; class ``c`` is an ordered pair of motifs.

    Pairs come in both orders (a before b, and b before a are two classes), so the order matters.
    """
    pairs = list(itertools.permutations(range(len(FREQUENCIES)), 2))
    if not 2 <= classes <= len(pairs):
        raise ValueError(f"classes must be 2..{len(pairs)}, got {classes}")
    if length < 3 * motif:
        raise ValueError(f"length must be at least {3 * motif} for motifs of {motif}, got {length}")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    t = np.arange(motif) / motif
    window = np.hanning(motif)
    x = rng.normal(0.0, noise, (n, length)).astype(np.float32)
    for i in range(n):
        first, second = pairs[int(y[i])]
        a = int(rng.integers(0, length - 2 * motif))
        b = int(rng.integers(a + motif, length - motif + 1))
        for start, k in ((a, first), (b, second)):
            phase = rng.uniform(0, 2 * np.pi)
            amp = rng.uniform(0.8, 1.2)
            x[i, start:start + motif] += amp * window * np.sin(2 * np.pi * FREQUENCIES[k] * t + phase)
    return x[:, None, :], y.astype(np.int64)
