"""MTG's published VGG-ish baseline weights (PyTorch `best_model.pth`) ported onto tfmood's `vggish` model.

    from tfmood.mtg_baseline import load_mtg_vggish
    model = load_mtg_vggish("best_model.pth")     # Keras vggish with MTG's weights, 56 sigmoid scores

The file is a PyTorch state dict. Reading a pickle can run arbitrary code, so it is never unpickled freely,
and never by `torch.load`: `read_torch_state_dict` is an unpickler whose `find_class` knows only
`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and the `torch.*Storage` types, all mapped to
numpy rebuilders here. Both the legacy format (a sequence of pickles followed by raw storages, what MTG's
file uses) and the zip format of torch >= 1.6 are read.

Why not `torch.load(weights_only=True)`: in torch < 2.6 it can still execute code (CVE-2025-32434), and one
reader gives one behaviour on hostile files whether torch is installed or not. Nothing in the file is
trusted: the pickle's size, opcode count and memo are capped before it is unpickled; every tensor's
offset, sizes and strides are checked against the bytes its storage really holds; zip members are read
with a limit (their declared sizes must match the tensors, and may not inflate far beyond the archive);
the object graph is walked with a depth and node budget (shared containers cannot make it exponential).
Any violation is a `CheckpointError` naming the file and the reason.

Mapping (PyTorch NCHW with H = frequency -> Keras NHWC with H = frequency): conv weights OIHW -> HWIO, BN
weight/bias/running_mean/running_var -> gamma/beta/moving_mean/moving_variance, Linear weight transposed.
"""

import collections
import io
import math
import os
import pickle
import pickletools
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

# Limits for untrusted files. A real state dict's pickle is a few KB to a few MB with one op per key, tensor
# field and memo entry; these leave two orders of magnitude of room.
MAX_PICKLE_BYTES = 64 << 20
MAX_PICKLE_OPS = 2_000_000
MAX_MEMO = 500_000
MAX_OBJECTS = 1_000_000      # containers and values visited when resolving the unpickled object
MAX_DEPTH = 32               # nesting of dicts/lists/tuples (a state dict is flat)
MAX_NDIM = 32
# torch writes zip members uncompressed; a re-zipped checkpoint compresses float weights ~1.1x. Storages
# that inflate to more than this many times the archive's size are refused (a zip bomb), before reading.
MAX_ZIP_INFLATION = 16
# Tensors may view a storage several times (tied weights, transposes) but a stride-0 "expand" of a tiny
# storage must not become gigabytes: resolved tensors may total at most this many times the storage bytes.
MAX_VIEW_AMPLIFICATION = 8


class CheckpointError(ValueError):
    """A file that is not a readable PyTorch state dict (or not MTG's baseline); the message says why."""


# === Restricted reader (no torch) ===

class _Storage:
    """A torch storage: its key, dtype and element count, and its numpy data once the file has delivered it."""

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel, self.data = key, np.dtype(dtype), numel, None


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


class _LazyTensor:
    """A tensor view of a storage, resolved (bounds-checked) after the raw storage bytes have been read."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise CheckpointError(f"a tensor's storage is a {type(storage).__name__}, not a torch storage")
        if not (_is_int(offset) and isinstance(size, tuple) and isinstance(stride, tuple)
                and all(map(_is_int, size)) and all(map(_is_int, stride))):
            raise CheckpointError("a tensor's offset, size and stride must be integers")
        if len(size) != len(stride) or len(size) > MAX_NDIM:
            raise CheckpointError(f"a tensor has size {size} and stride {stride}: mismatched or too many dims")
        if offset < 0 or min(size + stride, default=0) < 0:
            raise CheckpointError(f"a tensor has a negative offset, size or stride ({offset}, {size}, {stride})")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def resolve(self, budget) -> np.ndarray:
        data, key = self.storage.data, self.storage.key
        if data is None:
            raise CheckpointError(f"storage {key!r} is referenced but its data is missing (truncated file?)")
        count = math.prod(self.size)
        if count == 0:
            if self.offset > data.size:
                raise CheckpointError(f"a tensor's offset {self.offset} is beyond storage {key!r} "
                                      f"({data.size} elements)")
            return np.zeros(self.size, data.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if last >= data.size:
            raise CheckpointError(
                f"a tensor (offset {self.offset}, size {self.size}, stride {self.stride}) reaches element "
                f"{last} of storage {key!r}, which holds only {data.size}: out of bounds")
        budget["bytes"] -= count * data.itemsize
        if budget["bytes"] < 0:
            raise CheckpointError(f"the tensors expand to far more bytes than their storages hold "
                                  f"(a stride-0 tensor of size {self.size}?)")
        view = np.lib.stride_tricks.as_strided(data[self.offset:], shape=self.size,
                                               strides=[s * data.itemsize for s in self.stride], writeable=False)
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
        self._read_storage = read_storage  # zip format: _Storage -> numpy data

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise CheckpointError(f"refusing to load {module}.{name}: a state dict holds only tensors "
                              "(this file is not a plain PyTorch state dict)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointError(f"unsupported persistent id {pid!r:.100}")
        storage_type, key, _location, numel = pid[1:5]
        if not (isinstance(storage_type, _StorageType) and isinstance(key, str) and _is_int(numel) and numel >= 0):
            raise CheckpointError(f"malformed storage reference {pid!r:.100}")
        if len(pid) > 5 and pid[5] is not None:  # pre-1.0 files: a view (offset, size) of a root storage
            raise CheckpointError("storage views (PyTorch < 1.0 files) are not supported")
        storage = self._storages.get(key)
        if storage is None:
            if len(self._storages) >= MAX_MEMO:
                raise CheckpointError("too many storages")
            storage = self._storages[key] = _Storage(key, storage_type.dtype, numel)
            if self._read_storage is not None:
                storage.data = self._read_storage(storage)
        elif (storage.dtype, storage.numel) != (np.dtype(storage_type.dtype), numel):
            raise CheckpointError(f"storage {key!r} is referenced with two different types or sizes")
        return storage


def _check_pickle(data: bytes, what: str):
    """Cap a pickle's size, opcode count and memo before unpickling it (genops only parses, runs nothing).

    `data` starts with the pickle and may go on (the legacy format's raw storages follow it); returns where
    the pickle ends."""
    ops = memo = 0
    stream = io.BytesIO(data)
    try:
        for opcode, _arg, _pos in pickletools.genops(stream):
            ops += 1
            memo += opcode.name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE")
            if ops > MAX_PICKLE_OPS or memo > MAX_MEMO:
                raise CheckpointError(f"the {what} pickle has more than {MAX_PICKLE_OPS} operations or "
                                      f"{MAX_MEMO} memo entries: not a state dict")
    except ValueError as e:
        if len(data) > MAX_PICKLE_BYTES:
            raise CheckpointError(f"the {what} pickle is larger than {MAX_PICKLE_BYTES} bytes") from None
        raise CheckpointError(f"the {what} pickle is damaged ({e})") from None
    if stream.tell() > MAX_PICKLE_BYTES:
        raise CheckpointError(f"the {what} pickle is larger than {MAX_PICKLE_BYTES} bytes")
    return stream.tell()


def _load_pickle(buf: memoryview, pos: int, unpickler_factory, what: str):
    """Unpickle the pickle at `buf[pos:]` after checking it; returns (object, end position)."""
    length = _check_pickle(bytes(buf[pos:pos + MAX_PICKLE_BYTES + 1]), what)
    return unpickler_factory(io.BytesIO(bytes(buf[pos:pos + length]))).load(), pos + length


def read_torch_state_dict(path) -> "collections.OrderedDict[str, np.ndarray]":
    """Read a PyTorch state dict (.pth, legacy or zip format) into numpy arrays, without torch.

    Raises `CheckpointError` ("<path>: <reason>") for anything that is not a well-formed state dict.
    """
    try:
        if not os.path.isfile(path):
            raise CheckpointError("no such file")
        storages = {}
        if zipfile.is_zipfile(path):
            result = _read_zip(path, storages)
        else:
            result = _read_legacy(path, storages)
        return _resolve(result, storages)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, AttributeError, IndexError,
            struct.error, zipfile.BadZipFile, OverflowError, RecursionError) as e:
        # Whatever a damaged or foreign file makes the parsers raise becomes one sentence.
        raise CheckpointError(f"{path}: not a readable PyTorch state dict ({type(e).__name__}: {e})") from None


def _read_legacy(path, storages):
    with open(path, "rb") as f:
        buf = memoryview(f.read())

    def plain(pos, what):
        return _load_pickle(buf, pos, _NoGlobals, what)

    try:
        magic, pos = plain(0, "header")
    except (pickle.UnpicklingError, EOFError, ValueError, CheckpointError):
        magic = None
    if magic != LEGACY_MAGIC:
        raise CheckpointError("not a PyTorch checkpoint (neither a zip archive nor the legacy format's "
                              "magic number)")
    _version, pos = plain(pos, "header")
    sys_info, pos = plain(pos, "header")
    if not isinstance(sys_info, dict):
        raise CheckpointError("malformed header")
    if not sys_info.get("little_endian", True) or sys.byteorder != "little":
        raise CheckpointError("big-endian checkpoints are not supported")
    result, pos = _load_pickle(buf, pos, lambda f: _RestrictedUnpickler(f, storages), "state dict")
    keys, pos = plain(pos, "storage list")
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise CheckpointError("malformed storage list")
    for key in keys:
        storage = storages.get(key)
        if storage is None:
            raise CheckpointError(f"storage {key!r} is listed but no tensor uses it")
        if pos + 8 > len(buf):
            raise CheckpointError(f"truncated: storage {key!r} is missing")
        (numel,) = struct.unpack_from("<q", buf, pos)  # each storage: int64 element count, then raw bytes
        pos += 8
        nbytes = numel * storage.dtype.itemsize
        if numel != storage.numel:
            raise CheckpointError(f"storage {key!r} holds {numel} elements but is declared with {storage.numel}")
        if pos + nbytes > len(buf):
            raise CheckpointError(f"truncated: storage {key!r} needs {nbytes} bytes, {len(buf) - pos} remain")
        storage.data = np.frombuffer(buf[pos:pos + nbytes], dtype=storage.dtype.newbyteorder("<"))
        pos += nbytes
    return result


def _read_zip(path, storages):
    archive_size = os.path.getsize(path)
    budget = {"bytes": MAX_ZIP_INFLATION * archive_size + (1 << 20)}
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise CheckpointError("a zip file without data.pkl: not a PyTorch checkpoint")
        prefix = pkl[: -len("data.pkl")]
        if f"{prefix}byteorder" in names and _read_member(archive, f"{prefix}byteorder", 16, budget) != b"little":
            raise CheckpointError("big-endian checkpoints are not supported")

        def read_storage(storage):
            nbytes = storage.numel * storage.dtype.itemsize
            raw = _read_member(archive, f"{prefix}data/{storage.key}", nbytes, budget, exact=True)
            return np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))

        data = _read_member(archive, pkl, MAX_PICKLE_BYTES, budget)
        return _load_pickle(memoryview(data), 0, lambda f: _RestrictedUnpickler(f, storages, read_storage),
                            "state dict")[0]


def _read_member(archive, name, limit, budget, exact=False) -> bytes:
    """A zip member's bytes, reading at most `limit` (and what the inflation budget allows) whatever it claims."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise CheckpointError(f"member {name!r} is missing from the archive") from None
    if info.file_size > limit or (exact and info.file_size != limit):
        raise CheckpointError(f"member {name!r} is {info.file_size} bytes, expected "
                              f"{'exactly' if exact else 'at most'} {limit}")
    budget["bytes"] -= info.file_size
    if budget["bytes"] < 0:
        raise CheckpointError(f"the archive's members inflate to more than {MAX_ZIP_INFLATION}x its size "
                              "(a zip bomb?): refusing to read them")
    with archive.open(info) as f:
        raw = f.read(info.file_size)
    if exact and len(raw) != limit:
        raise CheckpointError(f"member {name!r} is truncated")
    return raw


class _NoGlobals(pickle.Unpickler):
    """The legacy header pickles hold only ints, dicts and lists: refuse every global."""

    def find_class(self, module, name):
        raise CheckpointError(f"unexpected global {module}.{name} in a checkpoint header")

    def persistent_load(self, pid):
        raise CheckpointError("unexpected persistent id in a checkpoint header")


def _resolve(result, storages):
    """The unpickled object with tensors materialised; a budget bounds the walk (shared containers)."""
    if not isinstance(result, dict):
        raise CheckpointError(f"holds a {type(result).__name__}, not a state dict (a mapping name -> tensor)")
    storage_bytes = sum(s.data.nbytes for s in storages.values() if s.data is not None)
    budget = {"objects": MAX_OBJECTS, "bytes": MAX_VIEW_AMPLIFICATION * storage_bytes + (16 << 20)}

    def walk(obj, depth):
        budget["objects"] -= 1
        if budget["objects"] < 0 or depth > MAX_DEPTH:
            raise CheckpointError(f"the object graph is deeper than {MAX_DEPTH} or larger than {MAX_OBJECTS} "
                                  "objects (shared or nested containers): not a state dict")
        if isinstance(obj, _LazyTensor):
            return obj.resolve(budget)
        if isinstance(obj, dict):
            return collections.OrderedDict((k, walk(v, depth + 1)) for k, v in obj.items())
        if isinstance(obj, (list, tuple)):
            return type(obj)(walk(v, depth + 1) for v in obj)
        return obj

    state = walk(result, 0)
    bad_keys = [k for k in state if not isinstance(k, str)]
    if bad_keys:
        raise CheckpointError(f"state dict keys must be strings, found {bad_keys[0]!r:.50}")
    return state


def load_state_dict(path) -> "collections.OrderedDict[str, np.ndarray]":
    """State dict as numpy arrays, through the restricted reader (never `torch.load`: see the module doc)."""
    return read_torch_state_dict(path)


# === Port onto Keras ===

def keras_weights(state) -> dict:
    """{keras layer name: [weights in Keras order]} for MTG's `CNN` state dict (keys inspected in the docs)."""
    missing = [k for k in _expected_keys() if k not in state]
    if missing:
        raise CheckpointError(f"lacks {missing[:5]}{' ...' if len(missing) > 5 else ''}: not MTG's baseline "
                              f"`CNN` state dict (scripts/baseline/model.py). Its keys: {list(state)[:6]}")
    for key in _expected_keys():
        value, ndim = state[key], 4 if key.startswith("conv_") and key.endswith("weight") else \
            2 if key == "dense.weight" else 1
        if not (isinstance(value, np.ndarray) and value.ndim == ndim and np.issubdtype(value.dtype, np.floating)):
            raise CheckpointError(f"{key} must be a {ndim}-D floating-point tensor, found "
                                  f"{getattr(value, 'shape', type(value).__name__)}")
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
        raise CheckpointError(f"The state dict has keys the vggish port does not know: {unknown[:5]}. "
                              "Is this MTG's baseline `CNN` (scripts/baseline/model.py)?")
    return weights


def _expected_keys():
    layers = ["bn_init"] + [f"{kind}_{i}" for i in range(1, 6) for kind in ("conv", "bn")] + ["dense"]
    return [f"{layer}.{p}" for layer in layers
            for p in (("weight", "bias") if not layer.startswith("bn") else
                      ("weight", "bias", "running_mean", "running_var"))]


def _batch_norm(state, name):
    return [state[f"{name}.{p}"] for p in ("weight", "bias", "running_mean", "running_var")]


def port_to_keras(state, model):
    """Copy MTG's state dict into a built `vggish` model (layer names `bn_init`, `conv_1`, ... `dense`)."""
    for name, values in keras_weights(state).items():
        layer = model.get_layer(name)
        expected = [tuple(w.shape) for w in layer.get_weights()]
        received = [tuple(v.shape) for v in values]
        if expected != received:
            raise CheckpointError(f"Layer {name}: the model expects weight shapes {expected}, the checkpoint "
                                  f"has {received}. Build vggish with the checkpoint's channels and num_tags.")
        layer.set_weights([np.asarray(v, dtype=np.float32) for v in values])
    return model


def load_mtg_state_dict(path) -> "collections.OrderedDict[str, np.ndarray]":
    """`load_state_dict`, then checked to be MTG's CNN (every key known, tensors of the right rank); numpy only."""
    state = load_state_dict(path)
    try:
        keras_weights(state)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return state


def load_mtg_vggish(path_or_state, input_shape=(96, None, 1)):
    """A Keras `vggish` with MTG's weights from a `.pth` path (or its state dict); channels and tag count are
    read from the checkpoint. Raises `CheckpointError` (naming the file) for a file that is not MTG's CNN."""
    from tfmood import models

    state = path_or_state if isinstance(path_or_state, dict) else load_mtg_state_dict(path_or_state)
    channels = tuple(state[f"conv_{i}.weight"].shape[0] for i in range(1, 6))
    model = models.build("vggish", input_shape=input_shape, num_tags=state["dense.weight"].shape[0],
                         channels=channels)
    return port_to_keras(state, model)
