"""After the search: final retraining (``retrain``), the hand-designed references it is measured
against (``references``) and export of the trained network (``export``).

Importing this package costs nothing (no torch): the CLI reads :data:`FORMATS` for ``export --format``
and a stored config's reference names are checked against ``references.REFERENCES`` (whose module
imports torch only inside the functions that build or score a network), so ``nasforge status`` and
``--help`` stay free of torch.
"""

from __future__ import annotations

# The export formats, in the CLI's order; final/export.py's export_model has one branch for each.
FORMATS = ("python", "torchscript", "onnx", "json")

__all__ = ["FORMATS"]
