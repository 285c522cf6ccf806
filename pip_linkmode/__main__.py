"""``python -m pip_linkmode``."""

import sys

from .cli import main

sys.exit(main())
