"""Every registered convolutional model passes the shared harness (tiny widths so each takes a few seconds)."""

import pytest

from model_harness import run_model_test

TINY = {
    "mobilenetv2": dict(alpha=0.35),
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_model_harness(name):
    run_model_test(name, **TINY[name])
