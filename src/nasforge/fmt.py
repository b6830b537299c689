"""Human-readable numbers shared by the CLI tables and the HTML report: one format everywhere."""

from __future__ import annotations

from nasforge.types import Budget


def fmt_time(seconds: float | None) -> str:
    """83 -> 1m23s; None -> '-'."""
    if seconds is None:
        return "-"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def fmt_count(n: float | None) -> str:
    """12345 -> 12.3K; None -> '-'."""
    if n is None:
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n:.0f}"


def fmt_budget(b: Budget) -> str:
    """Budget(6, 0.2) -> 6ep@20%."""
    return f"{b.epochs:g}ep@{b.fraction:.0%}"


def fmt_model(description: object, members: object = 1) -> str:
    """A final model's architecture, saying where it is the average of several trainings (its parameters are
    all of theirs), as the CLI's table and the report show it."""
    averaged = isinstance(members, int) and not isinstance(members, bool) and members > 1
    return str(description) + (f" (average of {members} trainings)" if averaged else "")
