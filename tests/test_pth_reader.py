"""The restricted .pth reader on hostile files: bounds, budgets and one-sentence errors (no torch needed).

Crafted files are written opcode by opcode (protocol 2, as torch writes them), so no torch is needed and every
field the reader must distrust (storage element counts, tensor offset/size/stride, zip member sizes) is ours
to set. Reads that could crash or hang run in a subprocess with a timeout.
"""

import collections
import os
import pickle
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tfmood import mtg_baseline
from tfmood.mtg_baseline import CheckpointError, read_torch_state_dict

REPO = Path(__file__).resolve().parents[1]


# === A tiny writer for torch's formats ===

def _str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _int(i):
    return b"\x8a\x08" + struct.pack("<q", i)  # LONG1 with 8 bytes: any int64


def _global(module, name):
    return b"c" + f"{module}\n{name}\n".encode()


def _tuple(items):
    return b"(" + b"".join(items) + b"t"


def _tensor(key, numel, offset, size, stride, storage="FloatStorage"):
    pid = _tuple([_str("storage"), _global("torch", storage), _str(key), _str("cpu"), _int(numel)]) + b"Q"
    args = _tuple([pid, _int(offset), _tuple(map(_int, size)), _tuple(map(_int, stride)), b"\x89",
                   _global("collections", "OrderedDict") + b")R"])
    return _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def _state_pickle(tensors):
    """tensors: name -> (key, storage numel, offset, size, stride)."""
    body = b"".join(_str(name) + _tensor(*spec) for name, spec in tensors.items())
    return b"\x80\x02" + _global("collections", "OrderedDict") + b")R(" + body + b"u."


def legacy_file(path, tensors, storages, pickled=None):
    """storages: key -> float32 array written after the pickle (element count as torch writes it)."""
    with open(path, "wb") as f:
        for header in (mtg_baseline.LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, f, protocol=2)
        f.write(pickled if pickled is not None else _state_pickle(tensors))
        pickle.dump(list(storages), f, protocol=2)
        for array in storages.values():
            f.write(struct.pack("<q", array.size) + np.asarray(array, "<f4").tobytes())
    return path


def zip_file(path, tensors, members, compress=zipfile.ZIP_STORED):
    """members: key -> bytes of archive/data/<key> (or a callable writing into an open member)."""
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        z.writestr("archive/data.pkl", _state_pickle(tensors))
        z.writestr("archive/byteorder", "little")
        for key, data in members.items():
            if callable(data):
                with z.open(f"archive/data/{key}", "w", force_zip64=True) as f:
                    data(f)
            else:
                z.writestr(f"archive/data/{key}", data)
    return path


def read_in_subprocess(path, timeout=60):
    """(returncode, stderr) of reading `path` in a fresh process: a segfault or a hang fails the test cleanly."""
    code = ("import sys; from tfmood.mtg_baseline import read_torch_state_dict as r, CheckpointError as E\n"
            "try:\n    s = r(sys.argv[1])\nexcept E as e:\n    print('error:', e, file=sys.stderr); sys.exit(3)\n"
            "print(sorted(s))")
    try:
        result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading {path} did not finish within {timeout} s")
    return result.returncode, result.stderr


FOUR = np.arange(4, dtype=np.float32)


def test_a_well_formed_crafted_file_reads_back_exactly(tmp_path):
    """The writer above is faithful: a transposed view and a slice of real storages come back right."""
    data = np.arange(12, dtype=np.float32)
    path = legacy_file(tmp_path / "ok.pth", {"t": ("0", 12, 0, (4, 3), (1, 4)), "s": ("0", 12, 5, (3,), (2,))},
                       {"0": data})
    state = read_torch_state_dict(path)
    np.testing.assert_array_equal(state["t"], data.reshape(3, 4).T)
    np.testing.assert_array_equal(state["s"], data[5:11:2])


@pytest.mark.parametrize("name, spec, reason", [
    # A 500-byte file whose tensor starts a million floats past its 4-float storage (segfaulted the tool).
    ("far-offset", ("0", 4, 1_000_000, (16, 16), (16, 1)), "out of bounds"),
    # Just past the end: silently copied neighbouring heap memory into the weights.
    ("overrun", ("0", 4, 2, (64,), (1,)), "out of bounds"),
    ("big-stride", ("0", 4, 0, (2, 2), (1_000, 1)), "out of bounds"),
    ("negative", ("0", 4, 0, (2,), (-1,)), "negative"),
    ("expand-bomb", ("0", 4, 0, (1 << 20, 1 << 12), (0, 0)), "expand"),
])
def test_tensor_views_are_checked_against_the_storage(tmp_path, name, spec, reason):
    path = legacy_file(tmp_path / f"{name}.pth", {"w": spec}, {"0": FOUR})
    assert os.path.getsize(path) < 600
    rc, stderr = read_in_subprocess(path)
    assert rc == 3, f"crafted {name} file was accepted or crashed the reader (rc {rc}): {stderr[-500:]}"
    assert str(path) in stderr and reason in stderr and "Traceback" not in stderr


def test_declared_storage_sizes_must_match_the_bytes(tmp_path):
    # The pickle declares a 1,000,000-element storage; the file holds 4 elements.
    path = legacy_file(tmp_path / "lie.pth", {"w": ("0", 1_000_000, 0, (1000,), (1,))}, {"0": FOUR})
    with pytest.raises(CheckpointError, match="lie.pth: storage '0' holds 4 elements but is declared"):
        read_torch_state_dict(path)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(legacy_file(tmp_path / "full.pth", {"w": ("0", 4, 0, (4,), (1,))},
                                      {"0": FOUR}).read_bytes()[:-5])
    with pytest.raises(CheckpointError, match="truncated"):
        read_torch_state_dict(truncated)


def test_a_pickle_of_shared_lists_is_refused_quickly(tmp_path):
    """60 levels of `x = [x, x]` pickle to a few hundred bytes but are 2**60 nodes as a tree (hung the reader)."""
    x = []
    for _ in range(60):
        x = [x, x]
    pickled = pickle.dumps(collections.OrderedDict(w=x), protocol=2)
    path = legacy_file(tmp_path / "shared.pth", {}, {}, pickled=pickled)
    assert os.path.getsize(path) < 800
    rc, stderr = read_in_subprocess(path, timeout=60)
    assert rc == 3 and "shared or nested containers" in stderr and str(path) in stderr, stderr[-500:]


def test_pickle_operation_count_is_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(mtg_baseline, "MAX_PICKLE_OPS", 1000)
    pickled = pickle.dumps(collections.OrderedDict((f"k{i}", i) for i in range(2000)), protocol=2)
    path = legacy_file(tmp_path / "many.pth", {}, {}, pickled=pickled)
    with pytest.raises(CheckpointError, match="more than 1000 operations"):
        read_torch_state_dict(path)


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    """A ~64 KiB archive whose member inflates to 64 MiB: refused with at most a few MiB allocated."""
    numel = 16 << 20  # 64 MiB of float32 zeros, deflated

    def zeros(f):
        chunk = bytes(1 << 20)
        for _ in range(numel * 4 // len(chunk)):
            f.write(chunk)

    path = zip_file(tmp_path / "bomb.pth", {"w": ("0", numel, 0, (numel,), (1,))}, {"0": zeros},
                    compress=zipfile.ZIP_DEFLATED)
    assert os.path.getsize(path) < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match="bomb.pth: .*zip bomb"):
            read_torch_state_dict(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MiB allocated while refusing the bomb"


def test_zip_members_must_have_the_declared_size(tmp_path):
    # The pickle declares 4 floats; the member holds 4 MiB (read whole before).
    path = zip_file(tmp_path / "long.pth", {"w": ("0", 4, 0, (4,), (1,))}, {"0": bytes(4 << 20)})
    with pytest.raises(CheckpointError, match="long.pth: member 'archive/data/0' is 4194304 bytes, expected exactly"):
        read_torch_state_dict(path)
    ok = zip_file(tmp_path / "ok.pth", {"w": ("0", 4, 1, (3,), (1,))}, {"0": FOUR.tobytes()})
    np.testing.assert_array_equal(read_torch_state_dict(ok)["w"], FOUR[1:])


ODD_FILES = {
    "empty.pth": b"",
    "text.pth": b"these are not the weights you are looking for\n",
    "random.pth": bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8)),
    "plain-pickle.pth": pickle.dumps({"a": 1}),
}


def _odd_files(tmp_path):
    paths = []
    for name, data in ODD_FILES.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    with zipfile.ZipFile(tmp_path / "no-pickle.pth", "w") as z:
        z.writestr("hello.txt", "hi")
    paths.append(tmp_path / "no-pickle.pth")
    # A valid state dict of another model: wrong keys.
    paths.append(legacy_file(tmp_path / "other-model.pth", {"fc.weight": ("0", 4, 0, (2, 2), (2, 1))},
                             {"0": FOUR}))
    # MTG's keys, but a conv weight of the wrong rank.
    specs = {k: ("0", 4, 0, (4,), (1,)) for k in mtg_baseline._expected_keys()}
    paths.append(legacy_file(tmp_path / "wrong-rank.pth", specs, {"0": FOUR}))
    return paths


def test_odd_files_give_one_sentence_naming_the_file(tmp_path):
    for path in _odd_files(tmp_path):
        with pytest.raises(CheckpointError) as info:
            mtg_baseline.load_mtg_state_dict(path)
        assert str(info.value).startswith(f"{path}: "), str(info.value)


def test_import_tool_answers_odd_files_with_a_sentence(tmp_path):
    """The CLI, run as a user runs it: exit 1 and `error: <file>: <reason>`, never a traceback."""
    tool = REPO / "tools" / "import_mtg_baseline.py"
    crafted = legacy_file(tmp_path / "far-offset.pth", {"w": ("0", 4, 1_000_000, (16, 16), (16, 1))}, {"0": FOUR})
    for path in [*_odd_files(tmp_path), crafted]:
        result = subprocess.run([sys.executable, str(tool), str(path), "--out", str(tmp_path / "out")],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, (path, result.returncode, result.stderr[-800:])
        assert "Traceback" not in result.stderr and result.stderr.startswith(f"error: {path}: "), result.stderr
    assert not (tmp_path / "out").exists()



def test_torch_older_than_2_6_is_refused_for_weights_only_loads(tmp_path, monkeypatch):
    """The one torch.load path (timm checkpoints): CVE-2025-32434 makes weights_only unsafe before 2.6."""
    torch = pytest.importorskip("torch")
    from tfmood.models import timm_port

    path = tmp_path / "w.pth"
    torch.save({"w": torch.ones(2)}, path)
    assert set(timm_port.read_checkpoint(str(path))) == {"w"}
    monkeypatch.setattr(torch, "__version__", "2.5.1+cpu")
    with pytest.raises(RuntimeError, match=r"torch 2.5.1\+cpu cannot read .*CVE-2025-32434"):
        timm_port.read_checkpoint(str(path))


def test_the_pickle_cap_does_not_limit_the_storages(tmp_path, monkeypatch):
    """Only the pickle is capped: a legacy file whose raw storages are far larger still reads."""
    monkeypatch.setattr(mtg_baseline, "MAX_PICKLE_BYTES", 4096)
    big = np.arange(100_000, dtype=np.float32)
    path = legacy_file(tmp_path / "big.pth", {"w": ("0", big.size, 0, (big.size,), (1,))}, {"0": big})
    np.testing.assert_array_equal(read_torch_state_dict(path)["w"], big)
    pickled = pickle.dumps(collections.OrderedDict(w="x" * 10_000), protocol=2)
    with pytest.raises(CheckpointError, match="larger than 4096 bytes"):
        read_torch_state_dict(legacy_file(tmp_path / "long.pth", {}, {}, pickled=pickled))
