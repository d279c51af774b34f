"""Shared fixtures: tiny MTG-layout datasets and their converted records."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# torch's optional GPU compiler triton segfaults when it is imported after TensorFlow (torch 2.14, TF 2.21), and
# torchvision / timm import it through torch._dynamo; no test needs it, so it is made unavailable.
sys.modules.setdefault("triton", None)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TINY_SIZES = {"train": 64, "validation": 56, "test": 56}


def shared_path(*parts) -> Path:
    """A file under ../shared/, or skip the test when the shared folder is absent (a user's clone)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture(scope="session")
def tiny_source(tmp_path_factory):
    """A tiny dataset in MTG's official layout: (root, splits dict). Every tag occurs in every split."""
    from tfmood.data import demo

    root = tmp_path_factory.mktemp("tiny-source")
    splits = demo.generate(str(root), seed=3, sizes=TINY_SIZES, frame_range=(40, 120))
    return root, splits


@pytest.fixture(scope="session")
def tiny_records(tiny_source, tmp_path_factory):
    """The tiny dataset converted to records (2 shards per split). Returns the records folder."""
    from tfmood.data import convert

    root, splits = tiny_source
    out = tmp_path_factory.mktemp("tiny-records")
    convert.run(splits, convert.Options(features_root=str(root / "features"), out_dir=str(out)),
                num_shards=2, workers=1, show_progress=False)
    return str(out)


@pytest.fixture
def restore_op_determinism():
    """For tests that train with `deterministic=True` in this process: op determinism is switched off again
    after the test (it is process-wide, and it turns Keras' XLA off: later tests would see it)."""
    yield
    from tensorflow.python.framework import config as tf_config  # no public switch back
    if hasattr(tf_config, "disable_op_determinism"):
        tf_config.disable_op_determinism()
