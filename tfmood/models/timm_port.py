"""Port timm's PyTorch weights into the zoo's Keras rebuilds of timm networks (SELAB-HCMUS 2021's backbones).

    python tools/port_timm.py efficientnet_b0 --pretrained --out saved_models/timm_efficientnet_b0.keras
    python -m tfmood.train --recipe selab2021-coteach-effb0-rexnet --model-option weights=saved_models/...keras

A port file is the rebuilt network as timm's bare ImageNet classifier (`imagenet_classes`, RGB input of any size),
saved as `.keras`: it is checked against timm output for output when written, and the taggers' `weights=` option
(`rexnet_100`, `mixnet_s`, `efficientnet_b0` with `source="timm"`) copies its backbone layers by name, leaving the
1->3 channel stem and the tagging head freshly initialised, as SELAB's `create_model(pretrained=True,
num_classes=56)` behind its stem does. Only this module's porting half needs torch and timm (`pip install -e
".[torch]"`); `load_backbone` does not.

Weight layouts: PyTorch conv `[out, in, kh, kw]` -> Keras `[kh, kw, in, out]`; depthwise `[C, 1, kh, kw]` ->
`[kh, kw, C, 1]`; linear `[out, in]` -> `[in, out]`; batch norm (weight, bias, running mean, running var) ->
(gamma, beta, moving mean, moving variance), with the epsilons checked equal. Every timm tensor must find a Keras
layer and every Keras backbone layer a tensor, so a timm version that renames a module fails loudly.
"""

import dataclasses
import os
from typing import Callable

import numpy as np

from tfmood.registry import Registry

# Layers of the tagger that a port file does not cover: bw2col's stem and the tagging head (fresh, as in SELAB).
TAGGER_OWN_LAYERS = ("stem_bn", "stem_conv1", "stem_conv2", "head_scores")
CLASSIFIER = "classifier_fc"


# --- loading a port file (no torch needed) -------------------------------------------------------------------------

def load_backbone(model, path: str) -> int:
    """Copy the backbone weights of port file `path` onto the tagger (or ImageNet classifier) `model` by layer name;
    returns the number of layers copied. Clear errors for a missing file, another network or other widths."""
    import keras

    if not str(path).endswith(".keras"):
        raise ValueError(f"weights={path!r}: a timm port file is a .keras file written by tools/port_timm.py.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights={path!r}: no such file. Write it with `python tools/port_timm.py NAME "
                                f"--out {path}` (NAME: {', '.join(PORTS.names())}).")
    source = keras.models.load_model(path, compile=False)
    expected = model.name.removesuffix("_imagenet")
    if source.name.removesuffix("_imagenet") != expected:
        raise ValueError(f"weights={path!r} holds {source.name.removesuffix('_imagenet')!r}, not {expected!r}: "
                         f"port the matching timm model (tools/port_timm.py).")
    copied = set()
    for layer in source.layers:
        if not layer.weights or (layer.name == CLASSIFIER and not _has_layer(model, CLASSIFIER)):
            continue
        if not _has_layer(model, layer.name):
            raise ValueError(f"weights={path!r}: layer {layer.name!r} has no counterpart in {model.name}; was the "
                             f"port made with other width/depth options?")
        target = model.get_layer(layer.name)
        mine, theirs = [tuple(w.shape) for w in target.weights], [tuple(w.shape) for w in layer.weights]
        if mine != theirs:
            raise ValueError(f"weights={path!r}: layer {layer.name!r} has shapes {theirs}, the model {mine}; was the "
                             f"port made with other width/depth options?")
        target.set_weights(layer.get_weights())
        copied.add(layer.name)
    missing = [l.name for l in model.layers if l.weights and l.name not in copied and l.name not in TAGGER_OWN_LAYERS]
    if missing:
        raise ValueError(f"weights={path!r} leaves {len(missing)} layers of {model.name} unset (first: {missing[:3]})")
    return len(copied)


def _has_layer(model, name) -> bool:
    return any(layer.name == name for layer in model.layers)


# --- which timm module becomes which Keras layer ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Port:
    """A timm network and its Keras rebuild: the zoo model, its builder options, and the module -> layer names."""
    model: str
    options: dict
    layer_names: Callable  # (timm model) -> {timm module name: Keras layer name}


PORTS = Registry("timm model")

# timm `EfficientNet` blocks (MixNet, EfficientNet): module -> suffix of the zoo's layer `{prefix}_block{k}_...`.
DS_BLOCK = {"conv_dw": "dw", "bn1": "dw_bn", "se.conv_reduce": "se_reduce", "se.conv_expand": "se_expand",
            "conv_pw": "project", "bn2": "project_bn"}
IR_BLOCK = {"conv_pw": "expand", "bn1": "expand_bn", "conv_dw": "dw", "bn2": "dw_bn", "se.conv_reduce": "se_reduce",
            "se.conv_expand": "se_expand", "conv_pwl": "project", "bn3": "project_bn"}
# timm `RexNet` LinearBottleneck.
REXNET_BLOCK = {"conv_exp.conv": "expand_conv", "conv_exp.bn": "expand_bn", "conv_dw.conv": "dw",
                "conv_dw.bn": "dw_bn", "se.fc1": "se_reduce", "se.bn": "se_bn", "se.fc2": "se_expand",
                "conv_pwl.conv": "project_conv", "conv_pwl.bn": "project_bn"}


def efficientnet_family_names(net, prefix):
    names = {"conv_stem": f"{prefix}_stem_conv", "bn1": f"{prefix}_stem_bn", "conv_head": f"{prefix}_head_conv",
             "bn2": f"{prefix}_head_bn", "classifier": CLASSIFIER}
    blocks = [(f"blocks.{s}.{b}", block) for s, stage in enumerate(net.blocks) for b, block in enumerate(stage)]
    for k, (path, block) in enumerate(blocks, start=1):
        table = IR_BLOCK if hasattr(block, "conv_pwl") else DS_BLOCK
        names.update({f"{path}.{module}": f"{prefix}_block{k}_{suffix}" for module, suffix in table.items()})
    return names


def rexnet_names(net, prefix="rexnet"):
    names = {"stem.conv": f"{prefix}_stem_conv", "stem.bn": f"{prefix}_stem_bn", "head.fc": CLASSIFIER}
    last = len(net.features) - 1  # the 1x1 conv to 1280 closes `features`
    for i in range(last):
        names.update({f"features.{i}.{module}": f"{prefix}_block{i + 1}_{suffix}"
                      for module, suffix in REXNET_BLOCK.items()})
    names.update({f"features.{last}.conv": f"{prefix}_head_conv", f"features.{last}.bn": f"{prefix}_head_bn"})
    return names


PORTS.register("rexnet_100")(Port("rexnet_100", {}, rexnet_names))
PORTS.register("mixnet_s")(Port("mixnet_s", {}, lambda net: efficientnet_family_names(net, "mixnet")))
PORTS.register("efficientnet_b0")(Port("efficientnet_b0", {"source": "timm"},
                                       lambda net: efficientnet_family_names(net, "efficientnet")))


# --- copying tensors (torch) -----------------------------------------------------------------------------------------

def _numpy(tensor):
    return tensor.detach().cpu().numpy().astype("float32")


def _keras_weights(module, layer):
    """The Keras weight list of `layer` from PyTorch `module` (conv / batch norm / linear)."""
    kind = type(layer).__name__
    if kind == "BatchNormalization":
        if not np.isclose(layer.epsilon, module.eps):
            raise ValueError(f"{layer.name}: batch-norm epsilon {layer.epsilon} vs timm's {module.eps}")
        return [_numpy(module.weight), _numpy(module.bias), _numpy(module.running_mean), _numpy(module.running_var)]
    weight = _numpy(module.weight)
    if kind == "Dense":
        kernel = weight.T
    elif kind == "DepthwiseConv2D":
        kernel = weight.transpose(2, 3, 0, 1)
    elif kind == "Conv2D":
        kernel = weight.transpose(2, 3, 1, 0)
    else:
        raise TypeError(f"{layer.name}: no PyTorch weight layout known for a Keras {kind}")
    return [kernel] + ([_numpy(module.bias)] if module.bias is not None else [])


def _leaf_modules(module, keras_name):
    """A timm MixedConv2d is a container of one conv per kernel group: the zoo names them `{name}_g{i}`."""
    import torch

    if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.BatchNorm2d)):
        return [(module, keras_name)]
    return [(child, f"{keras_name}_g{i}") for i, (_, child) in enumerate(module.named_children())]


def copy_weights(torch_model, keras_model, names: dict, keep=()) -> int:
    """Copy each PyTorch module of `torch_model` named in `names` onto the Keras layer `names[module]` (names
    for modules a network lacks, e.g. SE in some blocks, are skipped). Every tensor of `torch_model` must be copied
    and every Keras layer with weights set, except the layers in `keep`: a module renamed in another timm version
    fails here instead of silently leaving random weights. Returns the number of layers set."""
    modules = dict(torch_model.named_modules())
    keras_layers = {layer.name: layer for layer in keras_model._flatten_layers(include_self=False, recursive=True)}
    done = set()
    for torch_name, keras_name in names.items():
        if torch_name not in modules:
            continue
        for module, name in _leaf_modules(modules[torch_name], keras_name):
            if name not in keras_layers:
                raise ValueError(f"Keras layer {name!r} (for timm's {torch_name!r}) not in {keras_model.name}")
            layer = keras_layers[name]
            values = _keras_weights(module, layer)
            shapes = [tuple(w.shape) for w in layer.weights]
            if shapes != [v.shape for v in values]:
                raise ValueError(f"{name} <- {torch_name}: Keras shapes {shapes}, timm {[v.shape for v in values]}")
            layer.set_weights(values)
            done.add(name)
    unmapped = _unmapped_tensors(torch_model, [n for n in names if n in modules])
    if unmapped:
        raise ValueError(f"{len(unmapped)} timm tensors have no Keras layer (first: {unmapped[:3]})")
    unset = [n for n, layer in keras_layers.items() if layer.weights and not isinstance(layer, type(keras_model))
             and n not in done and n not in keep]
    if unset:
        raise ValueError(f"{len(unset)} Keras layers of {keras_model.name} got no timm weights (first: {unset[:3]})")
    return len(done)


def _unmapped_tensors(torch_model, names):
    prefixes = tuple(f"{name}." for name in names)
    return [key for key in torch_model.state_dict() if not key.endswith("num_batches_tracked")
            and not key.startswith(prefixes)]


# --- timm models and the port file -----------------------------------------------------------------------------------

def hide_triton():
    """Make `import timm` safe after TensorFlow: timm imports torch._dynamo, which probes `import triton`, and
    triton's native library segfaults when it loads after TensorFlow's (seen with torch 2.14 / triton 3.8 / TF 2.21
    on Linux). The port runs on CPU and compiles nothing, so triton is hidden (torch then reports it absent)."""
    import sys

    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        sys.modules["triton"] = None  # `import triton` raises ImportError instead of crashing the process


def import_timm():
    hide_triton()
    try:
        import timm
    except ImportError as error:
        raise RuntimeError("porting timm weights needs torch and timm: pip install -e \".[torch]\"") from error
    return timm


def timm_model(name: str, checkpoint: str = None, pretrained: bool = False):
    """timm's `name` in eval mode: random weights, a local checkpoint, or (network) `pretrained=True`."""
    PORTS.get(name)  # unknown names list the known ones
    timm = import_timm()
    if checkpoint is not None and not os.path.isfile(checkpoint):
        raise FileNotFoundError(f"timm checkpoint {checkpoint!r}: no such file")
    try:
        net = timm.create_model(name, pretrained=pretrained and checkpoint is None)
    except Exception as error:  # hub / network errors come in many types; only the download can fail here
        if not pretrained:
            raise
        raise RuntimeError(f"could not download timm's pretrained {name} ({type(error).__name__}: {error}); run with "
                           f"network access, or pass a local file with --checkpoint") from None
    if checkpoint is not None:
        try:
            net.load_state_dict(read_checkpoint(checkpoint), strict=True)
        except RuntimeError as error:  # missing / unexpected keys or other shapes
            raise ValueError(f"timm checkpoint {checkpoint!r} does not fit timm's {name}: "
                             f"{str(error).splitlines()[0]} {str(error).splitlines()[1:2]}") from None
    return net.eval()


def _require_safe_weights_only(torch, path):
    """torch < 2.6's `weights_only=True` can still run code from a crafted file (CVE-2025-32434): refuse it."""
    major, minor = (int(x) for x in str(torch.__version__).split(".")[:2])
    if (major, minor) < (2, 6):
        raise RuntimeError(f"torch {torch.__version__} cannot read {path!r} safely: its torch.load(weights_only=True) "
                           "can run code from the file (CVE-2025-32434). Install torch >= 2.6, or use the "
                           ".safetensors checkpoint.")


def read_checkpoint(path: str) -> dict:
    """A state dict from a timm checkpoint (`.safetensors`, or a `.pth`/`.pth.tar` read with `weights_only=True`,
    so no pickled code runs); unwraps timm's training checkpoints (`state_dict`, `state_dict_ema`) and `module.`."""
    import torch

    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        state = load_file(path)
    else:
        _require_safe_weights_only(torch, path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # pickle / zip errors: not a checkpoint
            raise ValueError(f"timm checkpoint {path!r} is not a readable PyTorch weights file ({error})") from None
    for key in ("state_dict_ema", "state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise ValueError(f"timm checkpoint {path!r} holds a {type(state).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def keras_classifier(name: str, num_classes: int = 1000):
    """The zoo's rebuild of timm's `name` as timm's ImageNet classifier, on NHWC RGB input of any size."""
    from tfmood import models

    port = PORTS.get(name)
    return models.build(port.model, input_shape=(None, None, 3), imagenet_classes=num_classes, **port.options)


def port(net, name: str):
    """timm model `net` (of architecture `name`) -> the Keras ImageNet classifier with its weights."""
    keras_model = keras_classifier(name, net.get_classifier().out_features)
    copy_weights(net, keras_model, PORTS.get(name).layer_names(net))
    return keras_model


def max_difference(net, keras_model, size=(64, 64), seed=0) -> float:
    """max |timm - Keras| of the logits on one random NCHW / NHWC image (inference mode)."""
    import torch

    x = np.random.default_rng(seed).standard_normal((1, 3, *size)).astype("float32")
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    got = np.asarray(keras_model(x.transpose(0, 2, 3, 1), training=False))
    return float(np.abs(expected - got).max())


def write_port(name: str, out: str, checkpoint: str = None, pretrained: bool = False, tolerance: float = 1e-4):
    """Port timm's `name` to `out` (.keras, written atomically); returns (max |difference|, parameter count)."""
    from tfmood.training.swa import save_model_atomic

    if not str(out).endswith(".keras"):
        raise ValueError(f"--out {out!r}: the port file must end in .keras")
    net = timm_model(name, checkpoint, pretrained)
    keras_model = port(net, name)
    difference = max_difference(net, keras_model)
    if difference > tolerance:
        raise RuntimeError(f"the port of {name} differs from timm by {difference:.3g} (> {tolerance}); not written")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    save_model_atomic(keras_model, out)
    return difference, keras_model.count_params()
