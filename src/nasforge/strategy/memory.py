"""What a strategy cannot read from the history: which of its proposals the loop rejected.

The loop checks every proposal (``space.check``) before it becomes a trial; a rejected one leaves
no trace in the history. A strategy that ranks candidates deterministically (a predictor, a
neighbourhood) would then propose the same invalid candidate again and again. The fix is cheap:
a proposal from the previous ``ask`` that is not in the history at the next ``ask`` was rejected
(or was a duplicate, which is in the history anyway), so it is remembered and not offered again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class Rejections:
    """Keys proposed by the last ``ask`` and keys found to be rejected; JSON state for resume."""

    def __init__(self) -> None:
        self.last: list[str] = []
        self.keys: set[str] = set()

    def update(self, seen: set[str]) -> set[str]:
        """Mark last ask's proposals missing from ``seen`` (the history's keys) as rejected; return all rejected."""
        self.keys.update(k for k in self.last if k not in seen)
        return self.keys

    def proposed(self, keys: Iterable[str]) -> None:
        self.last = list(keys)

    def state_dict(self) -> dict[str, Any]:
        return {"last": list(self.last), "rejected": sorted(self.keys)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last = list(state.get("last", []))
        self.keys = set(state.get("rejected", []))
