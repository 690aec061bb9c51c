"""``python -m export``: the same as ``export-model``."""
import sys

from .cli import main

sys.exit(main())
