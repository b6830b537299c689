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

__all__ = ["COMPRESSED", "COMPRESSED_FORMATS", "FORMATS", "PRUNE_MODES", "QUANTIZE"]
