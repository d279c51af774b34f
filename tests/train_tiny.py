"""`python -m tfmood.train` with the test-only `tiny_cnn` model registered, for subprocess tests:

    python tests/train_tiny.py --model tiny_cnn --data RECORDS --epochs 3 --crop-frames 32 ...
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tiny_model  # noqa: E402,F401  (registers tiny_cnn)
from tfmood.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
