"""Hand-designed references the searched network is measured against, in one explicit registry.

A search is only worth its time if what it finds beats what a practitioner would have written by
hand for that kind of data, trained with the same recipe. Each :class:`Reference` builds such a
network for an input shape and class count and names the data kinds it is meant for:

- ``classic``: the 2-conv network (1-D convolutions on sequences, ``dense128 relu`` on tables); the
  default ``retrain.baseline: true``, kept so stored experiments and published figures stay comparable.
- ``resnet20``: the CIFAR ResNet-20 (three residual stages of 16, 32, 64 channels), for images.
- ``resnet1d``: the same stage-space sample built with 1-D convolutions, for sequences.
- ``mlp``: the reference multilayer perceptron of the MLP space, for flat (tabular) data.

A size limit (``nasforge auto --max-params``) narrows a reference rather than dropping it: ``resnet20-w8`` is
ResNet-20 at base width 8 (stem 8, stages of 8, 16, 32 channels), ``resnet1d-w8`` its 1-D form, ``mlp-w64``
the reference MLP with hidden layers of 64 (:func:`fit_reference` picks the widest that fits). The depth and
shape that make it a strong hand-designed network stay, as a practitioner would shrink it for a small device.

For flat data, :func:`sklearn_references` adds scikit-learn's logistic regression and gradient
boosting (for regression: ridge regression and gradient boosting), scored on the same single read of the
test split as the networks. A regression network is the same network with one output.

Importing this module imports no torch (it is imported where a network is built or scored):
:mod:`nasforge.config` checks ``retrain.baseline`` and ``search.equal_time`` against :data:`REFERENCES`
when it reads any config, including a stored one that ``nasforge status`` reads.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nasforge.errors import ConfigError, NasforgeError
from nasforge.space.chain import Block

if TYPE_CHECKING:  # torch is imported where a network is built or scored, not here: see the module docstring
    import torch
    from torch import nn

    from nasforge.data.base import Dataset

log = logging.getLogger("nasforge")

IMAGE, SEQUENCE, FLAT = "image", "sequence", "flat"
KINDS = (IMAGE, SEQUENCE, FLAT)


def data_kind(input_shape: tuple[int, ...]) -> str:
    """``image`` for ``(C, H, W)``, ``sequence`` for ``(C, L)``, ``flat`` for ``(F,)``."""
    kind = {3: IMAGE, 2: SEQUENCE, 1: FLAT}.get(len(input_shape))
    if kind is None:
        raise NasforgeError(f"input shape {input_shape} is neither an image (C, H, W), a sequence (C, L) nor "
                            "flat (F,): no reference network fits it")
    return kind


# ----------------------------------------------------------------------------------- classic 2-conv


def _conv(width: int) -> Block:
    return Block("conv", (("width", width), ("kernel", 3), ("stride", 1), ("padding", "same"), ("act", "relu"),
                          ("bn", False), ("skip", False)))


_MAXPOOL2 = Block("pool", (("pool", "max"), ("pool_size", 2)))
_DENSE128 = Block("dense", (("width", 128), ("act", "relu")))
# The classic 2-conv network on images: conv32 3x3, max-pool, conv64 3x3, max-pool, dense128, output.
BASELINE_BLOCKS = (_conv(32), _MAXPOOL2, _conv(64), _MAXPOOL2, _DENSE128)


def baseline_blocks(input_shape: tuple[int, ...]) -> tuple[Block, ...]:
    """The classic baseline for this input: the blocks it is built from, and described by.

    Images ``(C, H, W)`` get the 2-conv network with 3x3 convolutions, sequences ``(C, L)`` the same
    with 1-D convolutions (kernel 3); a max-pool is left out where an axis is already down to 1 (it
    would collapse it). Flat (tabular) input ``(F,)`` gets the dense part alone: dense128 relu.
    """
    if len(input_shape) < 2:
        return (_DENSE128,)
    spatial = list(input_shape[1:])
    blocks: list[Block] = []
    for conv in BASELINE_BLOCKS[0], BASELINE_BLOCKS[2]:
        blocks.append(conv)  # stride 1, same padding: the size is kept
        if min(spatial) >= 2:
            blocks.append(_MAXPOOL2)
            spatial = [(d - 2) // 2 + 1 for d in spatial]
    return (*blocks, _DENSE128)


def baseline_description(input_shape: tuple[int, ...]) -> str:
    """What :func:`baseline_model` builds for this input, e.g. ``conv32 k3 > maxpool2 > ...`` on sequences."""
    rank = len(input_shape) - 1
    return " > ".join(b.describe(rank) for b in baseline_blocks(input_shape))


def baseline_model(input_shape: tuple[int, ...], n_out: int) -> nn.Module:
    """The classic reference for images, sequences or flat input (see :func:`baseline_blocks`)."""
    from nasforge.space.chain_nn import build_chain

    return build_chain(baseline_blocks(input_shape), "flatten", input_shape, n_out)


# ----------------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Reference:
    """A hand-designed network: ``build(input_shape, n_out)`` gives ``(description, module)``.

    ``kinds`` are the data kinds (:data:`KINDS`) it is meant for; building it for another kind is
    refused, since a 1-D ResNet on images or an MLP on pixels would be a straw man, not a reference.
    """

    kinds: frozenset[str]
    about: str
    build: Callable[[tuple[int, ...], int, int | None], tuple[str, nn.Module]]  # (shape, n_out, width or None)
    width: int | None = None  # its base width, where a ``-wN`` name narrows it (None: it has no such width)
    narrower: tuple[int, ...] = ()  # the base widths fit_reference tries, widest first (see _IN_EIGHTS)

    def applies(self, input_shape: tuple[int, ...]) -> bool:
        return len(input_shape) in (1, 2, 3) and data_kind(input_shape) in self.kinds


def _classic(input_shape: tuple[int, ...], n_out: int, width: int | None = None) -> tuple[str, nn.Module]:
    # described without a prefix: the text stored experiments and published figures already show
    return baseline_description(input_shape), baseline_model(input_shape, n_out)


def _resnet(name: str) -> Callable[[tuple[int, ...], int, int | None], tuple[str, nn.Module]]:
    def build(input_shape: tuple[int, ...], n_out: int, width: int | None = None) -> tuple[str, nn.Module]:
        from nasforge.space.stage import StageSpace  # the stage space builds 2-D or 1-D from the input's rank

        w = width or RESNET_WIDTH
        space = StageSpace(widths=(w, 2 * w, 4 * w), stems=(w,))
        sample = space.resnet20(w)
        why = space.check(sample, input_shape, n_out)
        if why is not None:
            raise ConfigError(f"reference {name} cannot be built for input shape {input_shape}: {why}; "
                              "use retrain.baseline: classic")
        named = name if width is None else f"{name}-w{width}"
        return f"{named}: {space.describe(sample)}", space.build(sample, input_shape, n_out)

    return build


def _mlp(input_shape: tuple[int, ...], n_out: int, width: int | None = None) -> tuple[str, nn.Module]:
    from nasforge.space.mlp import MlpSpace

    w = width or MLP_WIDTH
    space = MlpSpace(widths=(w,))
    sample = space.reference(w)
    desc = space.describe(sample)  # "mlp 256-256 ...": the name is already its first word
    return f"mlp: {desc.removeprefix('mlp ')}", space.build(sample, input_shape, n_out)


RESNET_WIDTH, MLP_WIDTH = 16, 256  # the references' own base widths (ResNet-20's first stage; the MLP's layers)
# The narrowings fit_reference tries, widest first: multiples of 8 (a CPU's vector registers, oneDNN's channel blocks
# and a GPU's tensor cores take channels 8 at a time), then 4 for the smallest limits. ResNet-20 on 28 x 28 images,
# 2 threads, batch 128: base width 8 trains 9.7 steps/s, 9 (86.7K parameters) 4.5, 12 4.1, 16 5.2.
_IN_EIGHTS = {RESNET_WIDTH: (8, 4), MLP_WIDTH: (*range(MLP_WIDTH - 8, 7, -8), 4)}


CLASSIC = "classic"  # what retrain.baseline: true trains
REFERENCES: dict[str, Reference] = {
    CLASSIC: Reference(frozenset(KINDS), "the 2-conv network (1-D on sequences, dense128 on tables)", _classic),
    "resnet20": Reference(frozenset({IMAGE}), "ResNet-20: residual stages of 16, 32, 64 channels", _resnet("resnet20"),
                          RESNET_WIDTH, _IN_EIGHTS[RESNET_WIDTH]),
    "resnet1d": Reference(frozenset({SEQUENCE}), "ResNet-20's stages with 1-D convolutions", _resnet("resnet1d"),
                          RESNET_WIDTH, _IN_EIGHTS[RESNET_WIDTH]),
    "mlp": Reference(frozenset({FLAT}), "the MLP space's reference multilayer perceptron", _mlp, MLP_WIDTH,
                     _IN_EIGHTS[MLP_WIDTH]),
}
_NARROWED = re.compile(r"([a-z0-9]+)-w([1-9][0-9]*)")  # resnet20-w8: a reference at another base width


def split_reference(name: str) -> tuple[str, int | None]:
    """``("resnet20", 8)`` for ``resnet20-w8``; ``(name, None)`` for any other name (checked elsewhere)."""
    m = _NARROWED.fullmatch(name)
    if m is not None and m.group(1) in REFERENCES and REFERENCES[m.group(1)].width is not None:
        return m.group(1), int(m.group(2))
    return name, None


def is_reference(name: object) -> bool:
    """Whether ``name`` names a reference: one of :data:`REFERENCES`, or one of them narrowed (``resnet20-w8``)."""
    return isinstance(name, str) and split_reference(name)[0] in REFERENCES


AUTO = "auto"  # the data kind's default reference
DEFAULTS = {IMAGE: "resnet20", SEQUENCE: "resnet1d", FLAT: "mlp"}


def default_reference(input_shape: tuple[int, ...]) -> str:
    """The strong reference for this kind of data: resnet20 on images, resnet1d on sequences, mlp on tables."""
    return DEFAULTS[data_kind(input_shape)]


def check_baseline(value: Any, where: str = "retrain.baseline") -> bool | str:
    """``true``, ``false``, ``auto`` or a name of :data:`REFERENCES`, else a one-line ConfigError."""
    if isinstance(value, bool) or (isinstance(value, str) and (is_reference(value) or value == AUTO)):
        return value
    raise ConfigError(f"{where} must be true (classic), false, {AUTO} (the data kind's default) or a reference "
                      f"name ({', '.join(REFERENCES)}, or one narrowed such as resnet20-w8), got {value!r}")


def resolve_baseline(value: bool | str | None, input_shape: tuple[int, ...]) -> str | None:
    """The reference a retrain trains for this input: ``true`` is classic, ``false``/None none, ``auto`` the default.

    A reference not meant for this kind of data is refused before anything trains.
    """
    if value is None or value is False:
        return None
    name = CLASSIC if value is True else str(check_baseline(value))
    if name == AUTO:
        return default_reference(input_shape)
    base = REFERENCES[split_reference(name)[0]]
    if not base.applies(input_shape):
        kind = data_kind(input_shape)
        fits = [n for n, r in REFERENCES.items() if kind in r.kinds]
        raise ConfigError(f"reference {name!r} is for {'/'.join(sorted(base.kinds))} data, not {kind} "
                          f"data (input shape {input_shape}): use {AUTO} or one of {', '.join(fits)}")
    return name


def make_reference(name: str, input_shape: tuple[int, ...], n_out: int) -> tuple[str, nn.Module]:
    """Build the named reference (or ``auto``'s) for this input: ``(description, module)``."""
    resolved = resolve_baseline(name, input_shape)
    assert resolved is not None
    base, width = split_reference(resolved)
    return REFERENCES[base].build(input_shape, n_out, width)


def fit_reference(name: str, input_shape: tuple[int, ...], n_out: int, max_params: int) -> str:
    """``name``, or the widest narrowing of it (``resnet20-w8``) with at most ``max_params`` parameters.

    A size limit is a user's (a microcontroller's flash, a latency target): the reference is measured under it
    too, else the comparison would set a network within the limit against one that breaks it. ConfigError
    where even the narrowest of its ``narrower`` widths is larger, naming its size.
    """
    from nasforge.evaluate.cost import count_params  # torch: imported where a network is built (module docstring)

    def params(n: str) -> int:
        return count_params(make_reference(n, input_shape, n_out)[1])

    if params(name) <= max_params:
        return name
    base, width = split_reference(name)
    full = REFERENCES[base].width
    if full is None:
        raise ConfigError(f"reference {name!r} has {params(name):,} parameters, over the limit of {max_params:,}, "
                          f"and no width to narrow: use the data kind's reference ({AUTO}) or raise the limit")
    widths = [w for w in REFERENCES[base].narrower if w < (width or full)]  # widest first; parameters shrink
    least = widths[-1] if widths else width or full
    smallest = params(f"{base}-w{least}")
    if not widths or smallest > max_params:
        raise ConfigError(f"a size limit of {max_params:,} parameters is below the narrowest {base} for these data "
                          f"({smallest:,} parameters at width {least}): raise the limit")
    lo, hi = 0, len(widths) - 1  # the first (widest) that fits, bisected: widths[hi] always fits
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if params(f"{base}-w{widths[mid]}") <= max_params else (mid + 1, hi)
    return f"{base}-w{widths[lo]}"


# ----------------------------------------------------------------------------------- scikit-learn


SKLEARN = {
    "logistic_regression": "StandardScaler + LogisticRegression(max_iter=2000)",
    "gradient_boosting": "HistGradientBoostingClassifier",
}
SKLEARN_REGRESSION = {
    "ridge": "StandardScaler + RidgeCV (alpha 1e-3..1e3 by leave-one-out)",
    "gradient_boosting": "HistGradientBoostingRegressor",
}


@dataclass(frozen=True)
class SklearnFit:
    """A scikit-learn reference fitted on train+validation, to be scored on the test split later."""

    name: str
    description: str
    model: Any
    seconds: float  # to fit
    target: tuple[float, float] | None = None  # regression: (mean, std) the network's targets were scaled by
    cut: str = ""  # where the time allowance stopped it: how far it got ("40 of 100 trees")


# iterations scikit-learn's references are fitted in, chunk by chunk (warm starts), so a time allowance can stop
# them between chunks: logistic regression's lbfgs steps (2,000 at most, as the reference always had) and gradient
# boosting's trees (its default 100)
LR_CHUNK, LR_MAX = 100, 2000
GB_CHUNK, GB_MAX = 10, 100


def _fit_within(name: str, model: Any, xs: Any, ys: Any, until: float) -> str:
    """Fit ``model`` chunk by chunk until it converges or ``until`` (a ``time.perf_counter()``) passes; "" where it
    finished, else how far it got ("40 of 100 trees")."""
    import warnings

    import numpy as np

    if name == "ridge":
        model.fit(xs, ys)
        return ""
    lr = name == "logistic_regression"
    step, most = (LR_CHUNK, LR_MAX) if lr else (GB_CHUNK, GB_MAX)
    inner = model.steps[-1][1] if lr else model
    inner.set_params(warm_start=True)
    done = 0
    while True:
        # lbfgs runs ``step`` more iterations from where it stopped; boosting adds trees up to ``max_iter``
        want = step if lr else done + step
        inner.set_params(max_iter=want)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs stopped at a chunk's end: it continues in the next
            model.fit(xs, ys)
        ran = int(np.max(inner.n_iter_))
        finished = ran < want  # converged, or boosting's early stopping
        done = done + ran if lr else ran
        if finished or done >= most:
            return ""
        if time.perf_counter() >= until:
            return f"{done} of {most} {'lbfgs iterations' if lr else 'trees'}"


def fit_sklearn(data: Dataset, *, seed: int = 0, seconds: float | None = None,
                class_weight: bool = False) -> list[SklearnFit]:
    """Logistic regression and gradient boosting (ridge regression and gradient boosting on regression targets, in
    their original units) fitted on flat data's train+validation split, touching no test example: ``nasforge
    auto`` fits them before it plans, so the time they take (34 s for gradient boosting on 6,000 rows of 784
    pixels) is measured and planned rather than overrunning the budget at the end. ``seconds``: the time they may
    take in all; a model still fitting when its share is spent stops between chunks of iterations, and its
    description says how far it got. ``class_weight``: classes weighted as the recipe's ``class_weight`` weights the
    networks' loss (scikit-learn's ``"balanced"``), so the comparison stays like with like. Empty, with the reason
    logged, for images or sequences, or when scikit-learn is not installed."""
    if len(data.input_shape) != 1:
        log.info("scikit-learn references skipped: the data are not flat (input shape %s)", data.input_shape)
        return []
    import numpy as np

    try:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
        from sklearn.linear_model import LogisticRegression, RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as e:
        log.warning("scikit-learn references skipped: scikit-learn is not importable (%s); install it to get them", e)
        return []
    x, y = data.train_plus_val()
    xs = x.numpy()
    target = data.target
    if target is not None:
        ys = y.double().numpy() * target[1] + target[0]
        models: dict[str, Any] = {
            "ridge": make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))),
            "gradient_boosting": HistGradientBoostingRegressor(random_state=seed)}
        names = SKLEARN_REGRESSION
    else:
        ys = y.numpy()
        weights = "balanced" if class_weight else None
        models = {"logistic_regression": make_pipeline(StandardScaler(),
                                                       LogisticRegression(max_iter=LR_MAX, class_weight=weights)),
                  "gradient_boosting": HistGradientBoostingClassifier(random_state=seed, class_weight=weights)}
        names = {k: v + (", class_weight=balanced" if class_weight else "") for k, v in SKLEARN.items()}
    out = []
    start = time.perf_counter()
    for i, (name, model) in enumerate(models.items()):
        t0 = time.perf_counter()
        # each model gets an equal share of what the allowance has left
        until = math.inf if seconds is None else t0 + (start + seconds - t0) / (len(models) - i)
        cut = _fit_within(name, model, xs, ys, until)
        out.append(SklearnFit(name, names[name], model, time.perf_counter() - t0, target, cut))
    return out


def score_sklearn(fits: list[SklearnFit], data: Dataset, x_test: torch.Tensor,
                  y_test: torch.Tensor) -> list[dict[str, Any]]:
    """The fitted references on the test split the retrain already opened (reading it again would count as another
    look): one dict per model, ``name``, ``description``, ``accuracy``, ``f1`` (macro), ``balanced_accuracy`` and
    ``seconds`` (fit and predict); for regression ``rmse``, ``mae`` and ``r2`` in the target's units instead."""
    import numpy as np
    import torch

    from nasforge.evaluate.metrics import classification_metrics, regression_metrics

    out: list[dict[str, Any]] = []
    for f in fits:
        description = f.description + (f" ({f.cut}: its share of the time budget)" if f.cut else "")
        t0 = time.perf_counter()
        raw = f.model.predict(x_test.numpy())
        seconds = f.seconds + time.perf_counter() - t0
        if f.target is not None:
            pred = torch.as_tensor(np.asarray(raw, dtype=np.float64))
            m = regression_metrics(pred, y_test.double() * f.target[1] + f.target[0])
            out.append({"name": f.name, "description": description, **m, "seconds": seconds})
            log.info("%s: test RMSE %.4g, R² %.3f in %.1f s", f.name, m["rmse"], m["r2"], seconds)
        else:
            m = classification_metrics(torch.as_tensor(raw, dtype=torch.int64), y_test.to(torch.int64),
                                       data.n_classes)
            out.append({"name": f.name, "description": description, "accuracy": m["accuracy"], "f1": m["f1"],
                        "balanced_accuracy": m["balanced_accuracy"], "seconds": seconds})
            log.info("%s: test accuracy %.4f in %.1f s", f.name, m["accuracy"], seconds)
    return out


def sklearn_references(data: Dataset, x_test: torch.Tensor, y_test: torch.Tensor, *,
                       seed: int = 0, class_weight: bool = False) -> list[dict[str, Any]]:
    """:func:`fit_sklearn` then :func:`score_sklearn`: logistic regression and gradient boosting on flat data (ridge
    and gradient boosting for regression), fit on train+validation, scored on the test split."""
    return score_sklearn(fit_sklearn(data, seed=seed, class_weight=class_weight), data, x_test, y_test)


def others_record(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The stored form of :func:`sklearn_references`: ``{name: {accuracy, f1, balanced_accuracy, seconds,
    description}}`` (regression: ``rmse``, ``mae``, ``r2`` in place of the three)."""
    return {r["name"]: {k: v for k, v in r.items() if k != "name"} for r in rows}
