"""``python -m train`` is ``train-model``."""
import sys

from .cli import main

sys.exit(main())
