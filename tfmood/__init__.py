"""tfmood: music mood and theme recognition on MTG-Jamendo with Keras 3 / TensorFlow."""

from tfmood import _cli, _quiet

__version__ = "0.1.0"

_quiet.install()  # before anything imports tensorflow: drop its benign start-up lines (see tfmood/_quiet.py)
_cli.install()    # tfmood commands: one sentence instead of a traceback for bad input (see tfmood/_cli.py)
