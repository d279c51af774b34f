"""Drop TensorFlow's known-benign start-up lines from stderr; keep everything else, errors included.

On a machine without a GPU, importing TensorFlow and touching a device prints C++ log lines such as

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. ...
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    E0000 ... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: ...

which a new user reads as a failure. `TF_CPP_MIN_LOG_LEVEL` cannot help: most of them are written before
absl's logging is set up, and the cuInit line is an ERROR, so a level that hides it hides real errors too.

`install()` (called by `tfmood/__init__.py`, so it runs first for every `python -m tfmood.*` command and
every tool that imports tfmood before tensorflow) adds an import hook: the first `import tensorflow` runs with
file descriptor 2 pointed at a temporary file, the CUDA platform is initialised inside that window
(`tf.config.list_physical_devices`, which allocates nothing), and then every captured line that is not in
`BENIGN` is written to the real stderr. The cuInit failure counts as benign only when no NVIDIA driver
(libcuda.so.1) can be loaded, i.e. when there is no GPU to lose; with a driver it is a real error and is kept.
GPUs stay visible: nothing sets CUDA_VISIBLE_DEVICES. Set TFMOOD_TF_STARTUP_LOGS=1 to see every line.

One more benign line comes later, at the first op that meets a dtype its oneDNN kernel lacks (an int32 or
bool Transpose, e.g. inside keras.metrics.AUC(multi_label=True) at the first training step):

    E0000 ... util.cc:131] oneDNN supports DT_INT32 only on platforms with AVX-512. Falling back to the
    default Eigen-based implementation if present.

(printed on AVX-512 machines too; the op runs TensorFlow's own kernel, same result). TensorFlow prints it
once per process (`absl::call_once` in `tensorflow::DataTypeUnsupportedWarning`), so the window calls that
function itself (through ctypes; no op runs and no eager context is created, so `tf.config` stays settable)
and drops what it prints: the process never prints it again. The cost: the same notice for DT_HALF or
DT_BFLOAT16 on a CPU without those instructions, a performance hint, is not shown either; run with
TFMOOD_TF_STARTUP_LOGS=1 to see it. If the symbol is not found (another TensorFlow build), nothing is called.
"""

import atexit
import ctypes
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
import threading

SHOW_ALL_ENV = "TFMOOD_TF_STARTUP_LOGS"
_CPP = r"^[IWE]\d{4} [\d:.]+\s+\d+ "  # absl's prefix: severity, date, time, thread id
BENIGN = tuple(re.compile(pattern) for pattern in (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    _CPP + r"port\.cc:\d+\] oneDNN custom operations are on\.",
    _CPP + r"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine, GPU will not be used\.$",
    _CPP + r"cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized to use available CPU instructions",
    r"^To enable the following instructions: .*, in other operations, rebuild TensorFlow with the appropriate "
    r"compiler flags\.$",
    # Harmless double registrations that some TF builds log at import.
    _CPP + r"\S+\.cc:\d+\] Unable to register cu(DNN|FFT|BLAS) factory: Attempting to register factory for "
           r"plugin cu\w+ when one has already been registered$",
    # Printed by `_spend_dtype_notice` inside the window (see the module docstring).
    _CPP + r"util\.cc:\d+\] oneDNN supports DT_\w+ only on platforms with AVX-512\. Falling back to the default "
           r"Eigen-based implementation if present\.$",
))
# Benign only when there is no driver (no GPU to use); with a driver, a cuInit failure is a real problem.
NO_DRIVER_ONLY = (re.compile(_CPP + r"\S+\.cc:\d+\] failed call to cuInit: "),)
# tensorflow::DataTypeUnsupportedWarning(const DataType&): the mangled name encodes the signature, so a
# TensorFlow whose function differs has no such symbol and is left alone.
DTYPE_NOTICE_SYMBOL = "_ZN10tensorflow26DataTypeUnsupportedWarningERKNS_8DataTypeE"


def install():
    """Add the import hook once (no-op when tensorflow is already imported or TFMOOD_TF_STARTUP_LOGS=1)."""
    if "tensorflow" in sys.modules or os.environ.get(SHOW_ALL_ENV) == "1":
        return
    if not any(isinstance(finder, _QuietFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())


def filter_lines(text, has_driver=None):
    """`text` without the benign lines (`has_driver`: whether libcuda loads; probed when needed)."""
    kept = []
    for line in text.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        if any(pattern.search(bare) for pattern in BENIGN):
            continue
        if any(pattern.search(bare) for pattern in NO_DRIVER_ONLY):
            if has_driver is None:
                has_driver = cuda_driver_present()
            if not has_driver:
                continue
        kept.append(line)
    return "".join(kept)


def cuda_driver_present():
    """Whether the NVIDIA driver library loads (TensorFlow would load the same library to use a GPU)."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` with the other finders and wraps its loader in `_QuietLoader`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one use: later imports are plain, and find_spec below can't recurse
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    """The real loader, run with stderr captured; anything else is delegated to it."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with _FilteredStderr():
            self._loader.exec_module(module)
            try:  # CUDA platform start-up (and its cuInit line) happens here, inside the window
                module.config.list_physical_devices()
            except Exception:  # a broken CUDA set-up: the user's own first device use reports it
                pass
            _spend_dtype_notice(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


def _spend_dtype_notice(tf):
    """Make TensorFlow print its once-per-process oneDNN dtype notice now (see the module docstring)."""
    try:
        library = ctypes.CDLL(os.path.join(tf.sysconfig.get_lib(), "libtensorflow_framework.so.2"))
        notice = library[DTYPE_NOTICE_SYMBOL]
    except (OSError, AttributeError):  # not Linux, or another build: the notice may show once later
        return
    notice.restype = None
    notice.argtypes = [ctypes.POINTER(ctypes.c_int)]
    notice(ctypes.byref(ctypes.c_int(tf.int32.as_datatype_enum)))


class _FilteredStderr:
    """Point fd 2 at a temporary file; on exit restore it and write the captured text minus benign lines.

    fd 2 belongs to the whole process, and tfmood.predict imports TensorFlow in a background thread: if the
    main thread fails and the interpreter exits while the window is open, an atexit handler restores fd 2 and
    writes out what was captured (the main thread's error included), so nothing but the benign lines is lost.
    """

    def __enter__(self):
        self._saved, self._lock = None, threading.Lock()
        try:
            sys.stderr.flush()
            self._capture = tempfile.TemporaryFile()
            self._saved = os.dup(2)
            os.dup2(self._capture.fileno(), 2)
        except (OSError, ValueError, AttributeError):  # no usable fd 2 (embedded interpreters): no filtering
            self._saved = None
            return self
        atexit.register(self._finish)
        return self

    def __exit__(self, *exc):
        atexit.unregister(self._finish)
        self._finish()
        return False

    def _finish(self):
        with self._lock:
            if self._saved is None:
                return
            try:
                sys.stderr.flush()
            except (OSError, ValueError, AttributeError):
                pass
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._saved = None
            self._capture.seek(0)
            text = filter_lines(self._capture.read().decode("utf-8", errors="replace"))
            self._capture.close()
        data = text.encode("utf-8", errors="replace")
        while data:
            data = data[os.write(2, data):]
