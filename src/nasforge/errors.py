"""One exception type for everything a user can fix.

The CLI prints ``str(err)`` as a single line and exits non-zero; messages therefore name both the
problem and the fix ("... : do X"), and never need a traceback to be understood.
"""

from __future__ import annotations


class NasforgeError(Exception):
    """A problem the user can fix: bad input, a missing file, a mismatched database."""


class ConfigError(NasforgeError):
    """The configuration (YAML or keyword arguments) is malformed or inconsistent."""


class DataError(NasforgeError):
    """A dataset is missing, unreadable or inconsistent."""


class StoreError(NasforgeError):
    """The experiment database cannot be used as asked (wrong experiment, unreadable file)."""
