"""One sentence, not a traceback, when a tfmood command fails on the user's input.

`install()` (called by `tfmood/__init__.py`) wraps `sys.excepthook`. When the running program is one of
tfmood's own entry points (`python -m tfmood.*`, or a script in the repository's `tools/`) and it dies of a
`USER_ERRORS` exception (a missing or unreadable file, a bad value: tfmood raises these with a sentence that
names the file and the reason), the hook prints `<command>: error: <message>` and the process exits with
status 1, as argparse's usage errors exit with 2. Anything else, and every program that merely imports
tfmood, keeps Python's full traceback; so does everything when TFMOOD_TRACEBACK=1.
"""

import os
import sys
from pathlib import Path

TRACEBACK_ENV = "TFMOOD_TRACEBACK"
_PACKAGE = Path(__file__).resolve().parent
_TOOLS = _PACKAGE.parent / "tools"
# TensorFlow's own file errors (tf.io.gfile, SavedModel loading), looked up only if TF is already imported.
_TF_USER_ERRORS = ("NotFoundError", "PermissionDeniedError", "DataLossError")


def user_errors():
    """The exception classes that mean "your input is wrong", not "tfmood has a bug"."""
    errors = [OSError, ValueError, UnicodeError]
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        errors += [getattr(tf.errors, name) for name in _TF_USER_ERRORS if hasattr(tf.errors, name)]
    return tuple(errors)


def install():
    if not getattr(sys.excepthook, "_tfmood", False):
        hook = _make_hook(sys.excepthook)
        hook._tfmood = True
        sys.excepthook = hook


def command_name(argv0=None):
    """`python -m tfmood.train` / `tools/convert.py` for a tfmood entry point, else None."""
    try:
        path = Path(argv0 if argv0 is not None else sys.argv[0]).resolve()
    except (OSError, IndexError, TypeError, ValueError):
        return None
    if path.suffix != ".py":
        return None
    if path.is_relative_to(_PACKAGE):
        parts = path.relative_to(_PACKAGE.parent).with_suffix("").parts
        return "python -m " + ".".join(parts[:-1] if parts[-1] == "__main__" else parts)
    if path.parent == _TOOLS:
        return f"tools/{path.name}"
    return None


def message(error):
    text = str(error).strip() or type(error).__name__
    if isinstance(error, OSError) and error.filename and str(error.filename) not in text:
        text = f"{text}: {error.filename}"
    return text


def _make_hook(previous):
    def hook(kind, error, traceback):
        name = command_name()
        if name is None or os.environ.get(TRACEBACK_ENV) == "1" or not isinstance(error, user_errors()):
            return previous(kind, error, traceback)
        sys.stderr.write(f"{name}: error: {message(error)}\n")
        sys.stderr.flush()
        return None
    return hook
