"""Fixtures of the kernel's tests (edgedeploy/core): none beyond tests/conftest.py's; the kernel needs no model."""
