"""Fixtures of the train tests (train/): helpers that build tiny runs and folders are in tests/train_helpers.py."""
