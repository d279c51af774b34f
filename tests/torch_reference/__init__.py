"""PyTorch reference implementations of the originals, for the differential tests (tests/test_differential*.py).

Each module is written from reading the original public code (repositories named in
shared/reference/fidelity.md); none of it is copied. `port` moves their weights into tfmood's Keras models.
Importing anything here needs torch: the tests import it after `pytest.importorskip("torch")`.
"""
