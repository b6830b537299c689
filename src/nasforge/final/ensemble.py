"""A final network as the average of several trainings of one architecture (a seed ensemble).

On a small table one training of a small network varies with its seed by more than the search can tell
networks apart: in 5-fold cross-validation (twice) on four tables, the average of five trainings of auto's
reference MLP erred less than one training on every table, by 0.7 to 1.1 points of accuracy
(``benchmarks/ensemble_cv.py``). Where converging is so cheap that the final share holds several trainings,
``nasforge auto`` trains several (``retrain.ensemble``) and averages them.

The members train apart (each its own seed, as separate runs), then are wrapped, so training, checkpoints
and resuming are those of single networks. The wrapper is an ``nn.Sequential`` holding one :class:`Ensemble`,
as the spaces build ``nn.Sequential``: every export format and loader takes it as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from nasforge.final.models import Fitted

# member j of seed s trains with seed s + MEMBER_SEED * j: member 0 is the single network of that seed, and
# members never take the seeds of `retrain --seeds N`'s other runs
MEMBER_SEED = 100_003


class Ensemble(nn.Module):
    """The average of networks trained apart: class probabilities, or a regression's predictions.

    Probabilities come back as their logarithm, which a softmax, an argmax or a cross-entropy reads as logits.
    """

    def __init__(self, members: nn.ModuleList, average: str = "probs") -> None:
        super().__init__()
        self.members = members
        self.average = average

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = torch.stack([m(x) for m in self.members])
        if self.average == "mean":
            return outs.mean(0)
        n = torch.tensor(float(outs.shape[0]), device=outs.device, dtype=outs.dtype)
        return torch.logsumexp(torch.log_softmax(outs, dim=-1), dim=0) - torch.log(n)


def wrap_members(members: list[nn.Module], *, regression: bool) -> nn.Sequential:
    """The trained ``members`` as one network (``nn.Sequential(Ensemble)``), eval and export alike."""
    return nn.Sequential(Ensemble(nn.ModuleList(members), "mean" if regression else "probs"))


def train_members(build: Callable[[], nn.Module], members: int, *, init_seed: int, regression: bool,
                  fit: Callable[[nn.Module, int], Fitted]) -> tuple[nn.Module, Fitted]:
    """``members`` networks trained apart, as one: member ``j`` is built under seed ``init_seed + MEMBER_SEED * j``
    and trained by ``fit(model, j)`` (which seeds its training alike); their seconds summed, the first one's curve.
    One member is the network itself, unwrapped."""
    trained: list[nn.Module] = []
    seconds = 0.0
    curve: tuple[Mapping[str, float], ...] = ()
    for j in range(members):
        torch.manual_seed(init_seed + MEMBER_SEED * j)
        model = build()
        got = fit(model, j)
        seconds += got.seconds
        curve = curve or got.curve
        trained.append(model)
    return (trained[0] if members == 1 else wrap_members(trained, regression=regression)), Fitted(seconds, curve)


def build_ensemble(build: Callable[[], nn.Module], n: int, *, regression: bool) -> nn.Module:
    """``build()`` itself for ``n == 1``, else ``n`` fresh copies wrapped (to load stored weights into)."""
    if n == 1:
        return build()
    return wrap_members([build() for _ in range(n)], regression=regression)


__all__ = ["MEMBER_SEED", "Ensemble", "build_ensemble", "train_members", "wrap_members"]
