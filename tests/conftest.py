"""Shared fixtures: small real data (digits, a Fashion-MNIST slice) and temporary databases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
HAVE_FMNIST = FMNIST_DIR.exists() or bool(os.environ.get("NASFORGE_DATA_DIR"))
needs_fmnist = pytest.mark.skipif(not HAVE_FMNIST, reason="Fashion-MNIST not installed (make test installs it)")


@pytest.fixture(scope="session")
def digits():
    from nasforge.data import load_dataset

    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def fmnist_small():
    if not HAVE_FMNIST:
        pytest.skip("Fashion-MNIST not installed (make test installs it)")
    from nasforge.data import load_dataset

    return load_dataset("fashion_mnist", limit=3000, seed=0)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run faster on one thread; two threads spin against each other on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
