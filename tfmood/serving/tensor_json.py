"""JSON <-> tensor conversion with TF Serving's REST rules (`tensorflow_serving/util/json_tensor.cc`).

Requests: row format (`instances`: one element per example, stacked) or columnar (`inputs`: whole tensors);
values must be dense nested lists whose leaves have the signature's type (numbers for floats, integer
literals for ints, true/false for bool, strings or `{"b64": ...}` for strings). Responses: `predictions`
(row) or `outputs` (columnar); float32 written as their shortest round-trip decimal, `*_bytes` strings as b64.
Errors are `RestError`s carrying TF Serving's status codes and messages.
"""

import base64
import binascii
import json

import numpy as np

from tfmood.serving.errors import RestError

ROW, COLUMNAR = "row", "columnar"

# TF's DataTypeString names, used in TF Serving's messages.
_TYPE_NAMES = {"float32": "float", "float64": "double", "float16": "half", "bfloat16": "bfloat16",
               "string": "string", "object": "string", "bool": "bool"}
class _Constant(float):
    """A `NaN`/`Infinity`/`-Infinity` token, told apart from a literal such as 1e400 that overflowed to inf."""


_DECODER = json.JSONDecoder(parse_constant=lambda token: _Constant(token.replace("inity", "")))
# Lists nested deeper than this are refused before any recursive walk. TF allows 254 dims; tfmood's
# signatures take rank 2 or 3, and the parser itself stops near Python's recursion limit (~1000).
MAX_RANK = 32
_ACCEPTED = {  # numpy kind -> JSON leaf types accepted (bool is not an int here, unlike Python)
    "f": (int, float, _Constant), "i": (int,), "u": (int,), "b": (bool,), "O": (str,)}


def type_name(dtype):
    name = np.dtype(dtype).name if not hasattr(dtype, "name") else dtype.name
    return _TYPE_NAMES.get(name, name)


def parse_json(body):
    """The request object; trailing bytes after it are ignored like rapidjson's stream parser does.

    Every malformed body is a 400 (INVALID_ARGUMENT), never an internal error: bytes that are not UTF-8,
    nesting deeper than the parser's recursion limit, and numbers too big for a double.
    """
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8", errors="strict")
        except UnicodeDecodeError as error:
            raise RestError.invalid(f"JSON Parse error: Invalid encoding: the body is not UTF-8 "
                                    f"(byte 0x{body[error.start]:02x}) at offset: {error.start}") from None
    else:
        text = body
    stripped = text.lstrip()
    if not stripped:
        raise RestError.invalid("JSON Parse error: The document is empty")
    try:
        document, _ = _DECODER.raw_decode(stripped)
    except json.JSONDecodeError as error:
        offset = error.pos + len(text) - len(stripped)
        raise RestError.invalid(f"JSON Parse error: {error.msg} at offset: {offset}") from None
    except RecursionError:
        raise RestError.invalid("JSON Parse error: The document is nested too deeply") from None
    except ValueError:  # Python's int-string limit (4,300 digits): far beyond a double, as rapidjson says
        raise RestError.invalid("JSON Parse error: Number too big to be stored in double.") from None
    if not isinstance(document, dict):
        raise RestError.invalid(f"JSON Value: {_show(document)} Is not object")
    return document


def signature_name(document):
    name = document.get("signature_name", "")
    if not isinstance(name, str):
        raise RestError.invalid(f"JSON Value: {_show(document)} not formatted correctly. "
                                "'signature_name' key must be a string value.")
    return name


def request_tensors(document, input_dtypes, signature):
    """(format, {input name: array}) from a predict request, for a signature with `input_dtypes` {name: dtype}."""
    if not input_dtypes:
        raise RestError.invalid(f"Failed to get input map for signature: {signature or 'DEFAULT'}")
    if "instances" in document and "inputs" in document:
        raise RestError.invalid(f"JSON Value: {_show(document)} Not formatted correctly expecting only one of "
                                "'inputs' or 'instances' keys to exist ")
    if "instances" in document:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise RestError.invalid(f"JSON Value: {_show(document)} Excepting 'instances' to be an list/array")
        if not instances:
            raise RestError.invalid(f"JSON Value: {_show(document)} No values in 'instances' array")
        return ROW, _from_instances(instances, input_dtypes)
    if "inputs" in document:
        return COLUMNAR, _from_inputs(document["inputs"], input_dtypes)
    raise RestError.invalid("Missing 'inputs' or 'instances' key")


def response_body(outputs, fmt):
    """{"predictions": ...} or {"outputs": ...} for {alias: array}."""
    if fmt == COLUMNAR:
        values = {alias: _to_json(alias, array) for alias, array in outputs.items()}
        return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
    batch = None
    for alias, array in outputs.items():
        if np.ndim(array) == 0:
            raise RestError.invalid(f"Tensor name: {alias} has no shape information ")
        if batch is not None and len(array) != batch:
            raise RestError.invalid(f"Tensor name: {alias} has inconsistent batch size: {len(array)} "
                                    f"expecting: {batch}")
        batch = len(array)
    values = {alias: _to_json(alias, array) for alias, array in outputs.items()}
    if len(values) == 1:
        return {"predictions": next(iter(values.values()))}
    return {"predictions": [{alias: rows[i] for alias, rows in values.items()} for i in range(batch or 0)]}


# === Requests ===

def _is_b64(value):
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _is_named(value):
    return isinstance(value, dict) and not _is_b64(value)


def _from_instances(instances, input_dtypes):
    names = sorted(input_dtypes)
    named = _is_named(instances[0])
    if not isinstance(instances[0], dict) and len(names) > 1:
        raise RestError.invalid("instances is a plain list, but expecting list of objects as multiple input "
                                "tensors required as per tensorinfo_map")
    rows = {name: [] for name in names}
    for i, element in enumerate(instances):
        if named != _is_named(element):
            kind = "object but got list" if named else "value/list but got object"
            raise RestError.invalid(f"Expecting {kind} at item {i} of input list")
        items = element.items() if named else [(names[0], element)]
        for name, value in items:
            if name not in input_dtypes:
                raise RestError.invalid(f"Failed to process element: {i} key: {name} of 'instances' list. "
                                        f"Error: INVALID_ARGUMENT: JSON object: does not have named input: {name}")
            try:
                rows[name].append(_to_array(value, input_dtypes[name]))
            except RestError as error:
                raise RestError.invalid(f"Failed to process element: {i} of 'instances' list. "
                                        f"Error: INVALID_ARGUMENT: {error.message}") from None
            if rows[name][-1].shape != rows[name][0].shape:
                raise RestError.invalid(f"Failed to process element: {i} of 'instances' list. Error: "
                                        f"INVALID_ARGUMENT: Expecting shape {_shape(rows[name][0].shape)} "
                                        f"but got: {_shape(rows[name][-1].shape)}")
        if named and set(element) != set(names):
            raise RestError.invalid(f"Failed to process element: {i} of 'instances' list. JSON object: "
                                    f"{_show(element)} keys must be equal to: {','.join(names)}")
    return {name: np.stack(arrays) for name, arrays in rows.items()}


def _from_inputs(value, input_dtypes):
    if not isinstance(value, dict) or _is_b64(value):
        if len(input_dtypes) > 1:
            raise RestError.invalid("inputs is a plain value/list, but expecting an object as multiple input "
                                    "tensors required as per tensorinfo_map")
        name = next(iter(input_dtypes))
        return {name: _to_array(value, input_dtypes[name])}
    for name in input_dtypes:
        if name not in value:
            raise RestError.invalid(f"Missing named input: {name} in 'inputs' object.")
    return {name: _to_array(value[name], dtype) for name, dtype in input_dtypes.items()}


def _to_array(value, dtype):
    """A dense array of `dtype` from nested lists, checking shape and leaf types like TF Serving."""
    dtype = np.dtype(dtype)
    if dtype.kind not in _ACCEPTED or dtype == np.float16:
        raise RestError("UNIMPLEMENTED", f"Conversion of JSON Value: {_show(value)} to type: {type_name(dtype)}")
    shape = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if len(shape) > MAX_RANK:
            raise RestError.invalid(f"JSON Value: lists nested more than {MAX_RANK} levels deep; "
                                    "no signature takes a tensor of that rank")
        if not probe:
            break
        probe = probe[0]
    _check_level(value, 0, shape, dtype)
    if dtype.kind == "O":
        return np.array(_decode_strings(value), dtype=object).reshape(shape)
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range floats become inf: found just below
        array = np.array(value, dtype=dtype).reshape(shape)
    if dtype.kind == "f" and not np.isfinite(array).all():
        _check_non_finite(value, array, dtype)
    return array


def _check_non_finite(value, array, dtype):
    """Only NaN/Infinity tokens may give non-finite values; a literal that overflowed is an error (TF Serving)."""
    for index in zip(*np.nonzero(~np.isfinite(array))):
        leaf = value
        for i in index:
            leaf = leaf[i]
        if type(leaf) is _Constant:
            continue
        if type(leaf) is float and not np.isfinite(leaf):  # e.g. 1e400: rapidjson refuses it while parsing
            raise RestError.invalid("JSON Parse error: Number too big to be stored in double.")
        raise RestError.invalid(f"Cannot convert JSON value: {_show(leaf)} to {type_name(dtype)} "
                                "without loss of precision.")


def _int_range(dtype):
    """The integer literals `dtype` holds exactly: its own range for ints, +-(2**mantissa - 1) for floats."""
    if dtype.kind == "f":
        limit = (1 << (np.finfo(dtype).nmant + 1)) - 1
        return -limit, limit
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _check_ints(values, dtype, types):
    ints = values if types == {int} else [v for v in values if type(v) is int]
    low, high = _int_range(dtype)
    if low <= min(ints) and max(ints) <= high:
        return
    bad = next(v for v in ints if not low <= v <= high)
    if dtype.kind != "f":
        raise RestError.invalid(f"JSON Value: {_show(bad)} Type: Number is not of expected type: "
                                f"{type_name(dtype)}")
    if abs(bad) > int(np.finfo(np.float64).max):
        raise RestError.invalid("JSON Parse error: Number too big to be stored in double.")
    raise RestError.invalid(f"Cannot convert JSON value: {_show(bad)} to {type_name(dtype)} "
                            "without loss of precision.")


def _check_level(value, level, shape, dtype):
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise RestError.invalid(f"JSON Value: {_show(value)} found at incorrect level: {level + 1} in the "
                                    f"JSON DOM. Expected at level: {rank}")
        _check_leaves([value], dtype, rank)
        return
    if level >= rank:
        raise RestError.invalid(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise RestError.invalid(f"Encountered list at unexpected size: {len(value)} at level: {level} "
                                f"expected size: {shape[level]}")
    if level == rank - 1:
        _check_leaves(value, dtype, rank)  # the innermost lists hold all the data: check them in bulk
    else:
        for item in value:
            _check_level(item, level + 1, shape, dtype)


def _check_leaves(values, dtype, rank):
    accepted = _ACCEPTED[dtype.kind]
    types = set(map(type, values))
    if types.issubset(accepted):  # exact types, so True is not a number; C-speed on 1e5 values
        if int in types:
            _check_ints(values, dtype, types)
        return
    for value in values:
        if type(value) in accepted or (dtype.kind == "O" and _is_b64(value)):
            continue
        if isinstance(value, list):
            raise RestError.invalid(f"Encountered list at unexpected level: {rank} expected < {rank}")
        if dtype.kind == "O" and isinstance(value, dict):
            raise RestError.invalid(f"JSON Value: {_show(value)} not formatted correctly for base64 data")
        raise RestError.invalid(f"JSON Value: {_show(value)} Type: {_json_type(value)} is not of expected "
                                f"type: {type_name(dtype)}")


def _decode_strings(value):
    if isinstance(value, list):
        return [_decode_strings(v) for v in value]
    if isinstance(value, dict):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise RestError.invalid("Unable to base64 decode") from None
    return value.encode()


# === Responses ===

def _to_json(alias, array):
    array = np.asarray(array)
    if array.dtype == np.float32:
        # str() of a float32 is its shortest round-trip decimal; parsed back as a double it prints the same.
        return array.astype(str).astype(np.float64).tolist()
    if array.dtype.kind in "fiub" and array.dtype not in (np.float16,):
        return array.tolist()
    if array.dtype.kind in "OS":
        if alias.endswith("_bytes"):
            return _map_nested(array.tolist(), lambda b: {"b64": base64.b64encode(b).decode()})
        return _map_nested(array.tolist(), lambda b: b.decode("utf-8", errors="replace"))
    raise RestError.invalid(f"Failed to write JSON value for tensor type: {type_name(array.dtype)}")


def _map_nested(value, fn):
    return [_map_nested(v, fn) for v in value] if isinstance(value, list) else fn(value)


def _json_type(value):
    return {bool: "True" if value is True else "False", str: "String", dict: "Object", list: "Array",
            type(None): "Null"}.get(type(value), "Number")


def _shape(shape):
    return "[" + ",".join(str(d) for d in shape) + "]"


def _show(value, limit=200):
    try:
        text = json.dumps(value)
    except (RecursionError, ValueError):  # a deeply nested value, or an int past Python's 4,300 digits
        return "<value too large to show>"
    return text if len(text) <= limit else text[:limit] + "..."
