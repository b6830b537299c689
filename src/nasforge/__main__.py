"""`python -m nasforge` is the `nasforge` command."""

import sys

from nasforge.cli import main

sys.exit(main())
