"""nasforge: neural architecture search that finds, trains and exports networks on a CPU.

The public names are imported on first use (PEP 562): ``import nasforge`` stays cheap, so commands
that only read a database (``nasforge status``) never pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nasforge.api import auto, compress, load, predict, retrain, search
    from nasforge.config import Config, from_dict, load_config
    from nasforge.errors import NasforgeError
    from nasforge.report.live import dashboard
    from nasforge.result import Result
    from nasforge.study import Study, open_study
    from nasforge.types import Budget, Cost, EvalResult, Sample, Suggestion, Trial, TrialState

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    **dict.fromkeys(("auto", "compress", "load", "predict", "retrain", "search"), "nasforge.api"),
    **dict.fromkeys(("Config", "from_dict", "load_config"), "nasforge.config"),
    "NasforgeError": "nasforge.errors",
    "dashboard": "nasforge.report.live",  # torch-free: the live view only reads the store
    "Result": "nasforge.result",
    **dict.fromkeys(("Study", "open_study"), "nasforge.study"),
    **dict.fromkeys(("Budget", "Cost", "EvalResult", "Sample", "Suggestion", "Trial", "TrialState"), "nasforge.types"),
}

__all__ = [
    "Budget", "Config", "Cost", "EvalResult", "NasforgeError", "Result", "Sample", "Study", "Suggestion", "Trial",
    "TrialState", "__version__", "auto", "compress", "dashboard", "from_dict", "load", "load_config", "open_study",
    "predict", "retrain", "search",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nasforge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
