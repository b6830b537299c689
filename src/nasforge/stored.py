"""Open a database's stored experiment and its config, importing no torch.

Apart from :mod:`nasforge.api` (which imports the whole training pipeline) so commands that only
read a database, such as ``nasforge status``, start fast; ``nasforge.api.stored`` is this function.
"""

from __future__ import annotations

from pathlib import Path

from nasforge.config import Config, from_dict
from nasforge.errors import NasforgeError, StoreError
from nasforge.paths import check_name
from nasforge.store import Experiment, Store


def stored(db: str | Path, name: str | None = None, *, readonly: bool = True) -> tuple[Store, Experiment, Config]:
    """Open an existing database and its experiment (the latest one unless named).

    Read-only unless asked (SQLite ``mode=ro``): a command that only reads cannot change the file.
    The stored name is checked like a new one, since it becomes part of paths and the database may
    come from someone else.
    """
    if name is not None:
        check_name(name)
    store = Store(db, create=False, readonly=readonly)
    exp = store.experiment(name)
    if exp is not None:
        try:
            check_name(exp.name, f"the experiment name stored in {db}")
            cfg = from_dict(exp.config)
        except NasforgeError as e:
            store.close()
            raise StoreError(f"{e}; this database cannot be used as it is") from None
        return store, exp, cfg
    held = store.experiment_names()
    store.close()
    if name is not None and held:
        raise StoreError(f"{db} has no experiment {name!r} (it holds {', '.join(map(repr, held))}); "
                         "pick one with --name")
    raise StoreError(f"{db} holds no experiment yet: run `nasforge search CONFIG --db {db}` first")
