"""Fixtures of the device runtime's tests (edge_runtime/): the model chain (``edge_models``, ``truth``) and
``real_photos`` come from tests/conftest.py; these tests never need TensorFlow."""
