"""Datasets for the search: built-in benchmarks and user files, all returned as a sealed ``Dataset``."""

from __future__ import annotations

from nasforge.data.base import Dataset, Preprocess, make_dataset
from nasforge.data.registry import DATA_SOURCES, NewExamples, load_dataset, read_new

__all__ = ["DATA_SOURCES", "Dataset", "NewExamples", "Preprocess", "load_dataset", "make_dataset", "read_new"]
