"""``python -m edgedeploy COMMAND ...``: the umbrella command (edgedeploy/cli.py)."""
import sys

from .cli import main

sys.exit(main())
