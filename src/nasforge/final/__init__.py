"""After the search: final retraining (``retrain``), the hand-designed references it is measured
against (``references``), compression (``compress``: int8, pruning) and export of the trained network (``export``).

Importing this package costs nothing (no torch): the CLI reads :data:`FORMATS` for ``export --format``
and a stored config's reference names are checked against ``references.REFERENCES`` (whose module
imports torch only inside the functions that build or score a network), so ``nasforge status`` and
``--help`` stay free of torch.
"""

from __future__ import annotations

# The export formats, in the CLI's order; final/export.py's export_model has one branch for each.
FORMATS = ("python", "torchscript", "onnx", "json")
# nasforge compress (final/compress.py): what it makes, and the formats `export --compressed` writes them in
QUANTIZE = ("int8",)
PRUNE_MODES = ("structured", "unstructured")
COMPRESSED = ("int8", "pruned")
COMPRESSED_FORMATS = ("torchscript", "onnx")

ENSEMBLE_MAX = 16  # retrain.ensemble above this is refused: a typo, not a plan (final/ensemble.py averages them)


def check_members(value: object, what: str) -> int:
    """``retrain.ensemble`` as a whole number 1..ENSEMBLE_MAX, else ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= ENSEMBLE_MAX:
        raise ValueError(f"{what} must be a whole number from 1 (one network) to {ENSEMBLE_MAX}, got {value!r}")
    return value


__all__ = ["COMPRESSED", "COMPRESSED_FORMATS", "ENSEMBLE_MAX", "FORMATS", "PRUNE_MODES", "QUANTIZE", "check_members"]
