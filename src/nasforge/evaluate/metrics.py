"""Classification metrics from one confusion matrix (accuracy, balanced accuracy, macro precision, recall and F1),
and regression metrics (RMSE, MAE, R²) in the targets' original units."""

from __future__ import annotations

import torch


def confusion(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(true, predicted) count matrix."""
    return torch.bincount(target * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def classification_metrics(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> dict[str, float]:
    """Accuracy, balanced accuracy (mean recall over the classes present in ``target``, as scikit-learn's) and
    macro-averaged precision, recall and F1 (over classes present in either; absent from both count as 0)."""
    cm = confusion(pred, target, n_classes).double()
    tp = cm.diag()
    predicted = cm.sum(0)
    actual = cm.sum(1)
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), torch.zeros_like(tp))
    present = (actual > 0) | (predicted > 0)
    k = max(int(present.sum()), 1)
    return {
        "accuracy": float(tp.sum() / cm.sum().clamp(min=1)),
        "balanced_accuracy": float(recall[actual > 0].mean()) if bool((actual > 0).any()) else 0.0,
        "precision": float(precision[present].sum() / k),
        "recall": float(recall[present].sum() / k),
        "f1": float(f1[present].sum() / k),
    }


REGRESSION_METRICS = ("rmse", "mae", "r2")


def regression_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """RMSE, MAE and R² (1 - residual / total sum of squares; as scikit-learn, 1.0 for a perfect fit and 0.0 where
    the targets do not vary), computed in float64 in the units given."""
    pred, target = pred.double().reshape(-1), target.double().reshape(-1)
    err = pred - target
    sse = float((err ** 2).sum())
    sst = float(((target - target.mean()) ** 2).sum()) if len(target) else 0.0
    n = max(len(target), 1)
    r2 = 1 - sse / sst if sst > 0 else (1.0 if sse == 0 else 0.0)
    return {"rmse": (sse / n) ** 0.5, "mae": float(err.abs().sum()) / n, "r2": r2}
