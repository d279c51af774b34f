"""MTG's published VGG-ish baseline weights (PyTorch `best_model.pth`) ported onto tfmood's `vggish` model.

    from tfmood.mtg_baseline import load_mtg_vggish
    model = load_mtg_vggish("best_model.pth")     # Keras vggish with MTG's weights, 56 sigmoid scores

The file is a PyTorch state dict. Reading a pickle can run arbitrary code, so it is never unpickled freely:
with torch installed, `torch.load(..., weights_only=True)`; without torch, `read_torch_state_dict`, an
unpickler whose `find_class` knows only `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and the
`torch.*Storage` types, all mapped to numpy rebuilders here. Both the legacy format (a sequence of pickles
followed by raw storages, what MTG's file uses) and the zip format of torch >= 1.6 are read.

Mapping (PyTorch NCHW with H = frequency -> Keras NHWC with H = frequency): conv weights OIHW -> HWIO, BN
weight/bias/running_mean/running_var -> gamma/beta/moving_mean/moving_variance, Linear weight transposed.
"""

import collections
import pickle
import struct
import sys
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
    "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


# === Restricted reader (no torch) ===

class _Storage:
    """A torch storage: its dtype, and its numpy data once the file has delivered it."""

    def __init__(self, dtype, numel):
        self.dtype, self.numel, self.data = np.dtype(dtype), int(numel), None


class _LazyTensor:
    """A tensor view of a storage, resolved after the raw storage bytes have been read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, int(offset), tuple(size), tuple(stride)

    def resolve(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise ValueError("The checkpoint references a storage whose data is missing; the file is truncated.")
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(data[self.offset:], shape=self.size,
                                               strides=[s * item for s in self.stride], writeable=False)
        return np.array(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _LazyTensor(storage, storage_offset, size, stride)


class _StorageType:
    def __init__(self, name):
        self.name, self.dtype = name, _STORAGE_DTYPES[name]


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles torch state dicts and nothing else: any other global in the stream is refused."""

    def __init__(self, file, storages, read_storage=None):
        super().__init__(file)
        self._storages = storages          # key -> _Storage, shared across the file
        self._read_storage = read_storage  # zip format: key, dtype -> numpy data

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"Refusing to load {module}.{name}: a state dict holds only tensors. "
                                     "This file is not a plain PyTorch state dict.")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"Unsupported persistent id {pid!r} in the checkpoint.")
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        if key not in self._storages:
            storage = _Storage(storage_type.dtype, numel)
            if self._read_storage is not None:
                storage.data = self._read_storage(key, storage.dtype)
            self._storages[key] = storage
        if view is not None:  # pre-1.0 files: a view (offset, size) of a root storage
            raise pickle.UnpicklingError("Storage views (PyTorch < 1.0 files) are not supported.")
        return self._storages[key]


def read_torch_state_dict(path) -> "collections.OrderedDict[str, np.ndarray]":
    """Read a PyTorch state dict (.pth, legacy or zip format) into numpy arrays, without torch."""
    storages = {}
    if zipfile.is_zipfile(path):
        result = _read_zip(path, storages)
    else:
        result = _read_legacy(path, storages)
    return _resolve(result)


def _read_legacy(path, storages):
    with open(path, "rb") as f:
        if _plain_load(f) != LEGACY_MAGIC:
            raise ValueError(f"{path} is not a PyTorch checkpoint (bad magic number).")
        _plain_load(f)  # protocol version
        sys_info = _plain_load(f)
        if not sys_info.get("little_endian", True) or sys.byteorder != "little":
            raise ValueError(f"{path}: big-endian checkpoints are not supported.")
        result = _RestrictedUnpickler(f, storages).load()
        for key in _plain_load(f):
            storage = storages[key]
            (numel,) = struct.unpack("<q", f.read(8))  # each storage: int64 element count, then raw bytes
            raw = f.read(numel * storage.dtype.itemsize)
            if len(raw) != numel * storage.dtype.itemsize:
                raise ValueError(f"{path} is truncated: storage {key} is incomplete.")
            storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
    return result


def _read_zip(path, storages):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise ValueError(f"{path} is a zip file without data.pkl: not a PyTorch checkpoint.")
        prefix = pkl[: -len("data.pkl")]

        def read_storage(key, dtype):
            return np.frombuffer(archive.read(f"{prefix}data/{key}"), dtype=dtype.newbyteorder("<"))

        with archive.open(pkl) as f:
            return _RestrictedUnpickler(f, storages, read_storage).load()


def _plain_load(f):
    """The legacy header pickles hold only ints, dicts and lists: refuse every global."""
    class _NoGlobals(pickle.Unpickler):
        def find_class(self, module, name):
            raise pickle.UnpicklingError(f"Unexpected global {module}.{name} in a checkpoint header.")
    return _NoGlobals(f).load()


def _resolve(obj):
    if isinstance(obj, _LazyTensor):
        return obj.resolve()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _resolve(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def load_state_dict(path) -> "collections.OrderedDict[str, np.ndarray]":
    """State dict as numpy arrays: `torch.load(weights_only=True)` when torch is installed, else the reader above."""
    try:
        import torch
    except ImportError:
        return read_torch_state_dict(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return collections.OrderedDict((k, v.numpy()) for k, v in state.items())


# === Port onto Keras ===

def keras_weights(state) -> dict:
    """{keras layer name: [weights in Keras order]} for MTG's `CNN` state dict (keys inspected in the docs)."""
    weights = {"bn_init": _batch_norm(state, "bn_init")}
    for i in range(1, 6):
        conv = f"conv_{i}"
        weights[conv] = [state[f"{conv}.weight"].transpose(2, 3, 1, 0), state[f"{conv}.bias"]]  # OIHW -> HWIO
        weights[f"bn_{i}"] = _batch_norm(state, f"bn_{i}")
    weights["dense"] = [state["dense.weight"].T, state["dense.bias"]]
    used = {f"{layer}.{p}" for layer in weights for p in
            ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    unknown = sorted(set(state) - used)
    if unknown:
        raise ValueError(f"The state dict has keys the vggish port does not know: {unknown[:5]}. "
                         "Is this MTG's baseline `CNN` (scripts/baseline/model.py)?")
    return weights


def _batch_norm(state, name):
    return [state[f"{name}.{p}"] for p in ("weight", "bias", "running_mean", "running_var")]


def port_to_keras(state, model):
    """Copy MTG's state dict into a built `vggish` model (layer names `bn_init`, `conv_1`, ... `dense`)."""
    for name, values in keras_weights(state).items():
        layer = model.get_layer(name)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        received = [tuple(v.shape) for v in values]
        if expected != received:
            raise ValueError(f"Layer {name}: the model expects weight shapes {expected}, the checkpoint has "
                             f"{received}. Build vggish with the checkpoint's channels and num_tags.")
        layer.set_weights([np.asarray(v, dtype=np.float32) for v in values])
    return model


def load_mtg_vggish(path, input_shape=(96, None, 1)):
    """A Keras `vggish` with MTG's weights from `path`; channels and tag count are read from the checkpoint."""
    from tfmood import models

    state = load_state_dict(path)
    missing = [k for k in ("conv_1.weight", "dense.weight") if k not in state]
    if missing:
        raise ValueError(f"{path} lacks {missing}: not MTG's baseline state dict. Keys: {list(state)[:6]}...")
    channels = tuple(state[f"conv_{i}.weight"].shape[0] for i in range(1, 6))
    model = models.build("vggish", input_shape=input_shape, num_tags=state["dense.weight"].shape[0],
                         channels=channels)
    return port_to_keras(state, model)
