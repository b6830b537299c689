"""nasforge: neural architecture search that finds, trains and exports networks on a CPU."""

from nasforge.api import auto, load, retrain, search
from nasforge.config import Config, from_dict, load_config
from nasforge.errors import NasforgeError
from nasforge.result import Result
from nasforge.study import Study, open_study
from nasforge.types import Budget, Cost, EvalResult, Sample, Suggestion, Trial, TrialState

__version__ = "0.1.0"

__all__ = [
    "Budget", "Config", "Cost", "EvalResult", "NasforgeError", "Result", "Sample", "Study", "Suggestion", "Trial",
    "TrialState", "__version__", "auto", "from_dict", "load", "load_config", "open_study", "retrain", "search",
]
