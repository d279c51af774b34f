"""EfficientNet-B0 / B7 taggers (HCMUS 2020 mel + WaveNet runs; SELAB-HCMUS 2021's co-teaching backbone).

Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019.
Seeds: HCMUS 2020 (seeds/000_*, systems.md D3: B0 on mel-spectrograms, B7 on 16-band NSynth WaveNet features
tiled to 32 rows) and SELAB-HCMUS 2021 (seeds/001_*, C2: B0 via `timm.create_model("efficientnet_b0")`). Both
sit behind the seeds' learned 1->3 channel stem (`bw2col`), global average pooling and a sigmoid dense head.

The two seeds ran two different EfficientNet implementations; `source` picks one (a registry, `SOURCES`):
- `"keras"` (default; HCMUS's `efficientnet_pytorch`): `keras.applications.EfficientNetB*` (include_top=False) on
  a free time axis, with that library's padding, head dropout, drop-connect and batch-norm momentum.
  Padding (`padding`): `efficientnet_pytorch`'s `from_pretrained` builds Conv2dStaticSamePadding, TF's "same" rule
  computed once for its image size (224 for B0, 600 for B7; the i-th stride-2 conv sees ceil(size / 2**i)) and
  applied to every input. keras.applications pads TF-style by the parity of the input it was built on instead,
  which differs wherever that parity differs from the image size's: B0 on an odd band count, B7 at 32 or 64 rows
  (its block4a sees 75 rows at 600, odd: (1, 1), where 8 rows pad (0, 1)), and outputs then differ by more than
  the logits' size. The default, `padding=None`, is the library's image size, so the model matches
  `from_pretrained` at every input size (tests/test_differential_effnet_pytorch.py); an int or (height, width)
  computes the static padding for another image size; `"same"` keeps keras.applications' own padding (=
  `efficientnet_pytorch`'s dynamic padding, `image_size=None`, on the frequency axis). Its other defaults are
  that library's too: head dropout 0.2 (B0) / 0.5 (B7), drop-connect 0.2 growing linearly over the blocks.
  `efficientnet_pytorch` keeps batch-norm statistics with momentum 0.01 (PyTorch terms), i.e. 0.99 in Keras terms
  (keras.applications' own): the backbone keeps it against `models.build`'s zoo-wide 0.9, while bw2col (plain
  PyTorch BN in the seeds) gets 0.9. HCMUS's code
  (v-nhandt21/MediaEval2020 : SourceCode/WaveNetModel/main.py) builds **B6 with AdvProp** weights for the WaveNet
  features, while the paper reports B7; tfmood follows the paper (B7, standard ImageNet weights; Keras has no
  AdvProp weights).
- `"timm"` (SELAB): timm's PyTorch-style `efficientnet_b0` / `efficientnet_b7`, rebuilt from its block strings with
  the zoo's mobile blocks: symmetric k//2 padding, BN eps 1e-5, and `create_model`'s defaults: no head dropout, no
  stochastic depth. B0 matches timm 1.0.31 with ported weights (tests/test_differential_timm.py; B7's scaling is
  timm's rule, not compared); its ImageNet weights come from `tools/port_timm.py efficientnet_b0` as
  `weights=FILE` (timm's are PyTorch: `imagenet=True` is the Keras source's).
`dropout` (head), `drop_connect_rate` (stochastic depth), `backbone_bn_momentum` and `padding` (keras source
only) override the source's defaults.

Input range (a decision, Keras source): Keras's EfficientNet starts with Rescaling(1/255) and an ImageNet
Normalization layer, i.e. it expects 0..255 RGB. We treat bw2col's ReLU output as 0..1 intensities and scale it by
255 first, so with `imagenet=True` the pretrained stem sees its usual statistics, and without ImageNet weights (the
Normalization layer is then the identity) the two rescalings cancel. timm's network takes bw2col's output as is,
as SELAB's code does.
Differs from the seeds: ImageNet weights are opt-in; `duplicate_bands` reproduces HCMUS's `np.tile` of the WaveNet
features inside the model instead of on disk (default: just enough copies to reach the 32 rows Keras's EfficientNet
needs, so 2 for 16 WaveNet bands and 1 for 96 mel bands).
"""

import dataclasses
from typing import Callable

import keras
from keras import layers

from tfmood.models import register
from tfmood.models.applications import variable_length_backbone
from tfmood.models.mobile_blocks import imagenet_classifier, timm_block_features
from tfmood.models.stem import bw2col, input_layer, tagging_head
from tfmood.registry import Registry

MIN_ROWS = 32  # keras.applications' EfficientNet refuses inputs smaller than 32 x 32

# timm's `_gen_efficientnet` block strings (one per stage) and its (channel, depth) multipliers per variant.
TIMM_ARCH = ("ds_r1_k3_s1_e1_c16_se0.25", "ir_r2_k3_s2_e6_c24_se0.25", "ir_r2_k5_s2_e6_c40_se0.25",
             "ir_r3_k3_s2_e6_c80_se0.25", "ir_r3_k5_s1_e6_c112_se0.25", "ir_r4_k5_s2_e6_c192_se0.25",
             "ir_r1_k3_s1_e6_c320_se0.25")
TIMM_MULTIPLIERS = {"B0": (1.0, 1.0), "B7": (2.0, 3.1)}
TIMM_STEM, TIMM_HEAD = 32, 1280


@dataclasses.dataclass(frozen=True)
class Source:
    """One EfficientNet implementation: how to build its feature extractor and its library's defaults."""
    features: Callable  # (rgb, variant, drop_connect_rate, imagenet, padding) -> feature map
    dropout: dict       # variant -> head dropout before the classifier
    drop_connect_rate: float
    bn_momentum: float  # the library's, in Keras terms; None: models.build's zoo-wide value (PyTorch's 0.1)
    padding: dict       # variant -> default `padding` option; None: the source has a single padding


SOURCES = Registry("EfficientNet source")


KERAS_DROP_CONNECT = 0.2  # keras.applications.EfficientNetB* fix it; its block rates are 0.2 * b / blocks


# efficientnet_pytorch's `from_pretrained` / `from_name` image size per variant (its `efficientnet_params`): the
# size its static "same" padding is computed for.
PYTORCH_IMAGE_SIZE = {"B0": 224, "B7": 600}  # (B6, the WaveNet code's: 528)


def static_same_padding(size, kernel, stride):
    """(before, after) zero padding of one axis as efficientnet_pytorch's Conv2dStaticSamePadding computes it for
    an input of `size`: TensorFlow's "same" rule for that size, fixed at construction and applied to any input."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def static_padding(image_size):
    """`variable_length_backbone`'s `padding` function for efficientnet_pytorch's static padding at `image_size`
    (an int: square, as the library uses it, or (height, width)). Every strided conv of EfficientNet has stride 2,
    so the i-th one sees an image of ceil(size / 2**i), as the library's `calculate_output_image_size` chain."""
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size

    def padding(index, conv):
        (kh, kw), (sh, sw) = conv.kernel_size, conv.strides
        return (static_same_padding(-(-height // 2 ** index), kh, sh),
                static_same_padding(-(-width // 2 ** index), kw, sw))
    return padding


def check_padding(padding):
    """The `padding` option: "same", or a static image size (a positive int, or [height, width])."""
    def size(n):
        return isinstance(n, int) and not isinstance(n, bool) and n > 0
    if padding == "same" or size(padding):
        return padding
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(size(n) for n in padding):
        return tuple(padding)
    raise ValueError(f"padding must be 'same' (TensorFlow's, by the input's size) or the image size "
                     f"efficientnet_pytorch computes its static padding for (224 for B0, 600 for B7, or "
                     f"[height, width]), got {padding!r}.")


def keras_features(rgb, variant, drop_connect_rate, imagenet, padding):
    rgb = layers.Rescaling(255.0, name="stem_to_rgb_range")(rgb)
    backbone = variable_length_backbone(f"EfficientNet{variant}", rgb.shape[1], imagenet,
                                        padding=None if padding == "same" else static_padding(padding))
    for layer in backbone.layers:  # the per-block stochastic-depth Dropouts ("block2b_drop"): rescale the schedule
        if isinstance(layer, layers.Dropout) and layer.name.endswith("_drop"):
            layer.rate = layer.rate * drop_connect_rate / KERAS_DROP_CONNECT
    return backbone(rgb)


def timm_features(rgb, variant, drop_connect_rate, imagenet, padding):
    if padding is not None:
        raise ValueError(f"source='timm' pads symmetrically (k // 2, as timm's efficientnet_b*): padding is an "
                         f"option of source='keras' (got padding={padding!r}).")
    if imagenet:
        raise ValueError("source='timm' has no Keras ImageNet weights (timm's are PyTorch): port them once with "
                         "`python tools/port_timm.py efficientnet_b0 --out FILE.keras` and pass weights=FILE.keras, "
                         "or use source='keras' with imagenet=True.")
    width, depth = TIMM_MULTIPLIERS[variant]
    return timm_block_features(rgb, TIMM_ARCH, TIMM_STEM, TIMM_HEAD, "swish", width, depth, drop_connect_rate,
                               name="efficientnet")


# efficientnet_pytorch (HCMUS): dropout_rate 0.2 (B0) / 0.5 (B7), drop_connect_rate 0.2, batch_norm_momentum 0.99
# (= keras.applications' own); timm.create_model("efficientnet_b*") as SELAB called it: drop_rate 0, no drop path.
# efficientnet_pytorch's from_pretrained pads statically for its image size (224 / 600); timm symmetrically.
SOURCES.register("keras")(Source(keras_features, dropout={"B0": 0.2, "B7": 0.5}, drop_connect_rate=0.2,
                                 bn_momentum=0.99, padding={"B0": PYTORCH_IMAGE_SIZE["B0"],
                                                            "B7": PYTORCH_IMAGE_SIZE["B7"]}))
SOURCES.register("timm")(Source(timm_features, dropout={"B0": 0.0, "B7": 0.0}, drop_connect_rate=0.0,
                                bn_momentum=None, padding={"B0": None, "B7": None}))


def fix_backbone_bn_momentum(model, momentum, stem_layers=("stem_bn",)):
    """Give every BatchNormalization of the backbone (all but bw2col's) this momentum, and keep it through
    `models.build`'s zoo-wide one (the seeds' bw2col is plain PyTorch BN: 0.9 in Keras terms)."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, layers.BatchNormalization) and layer.name not in stem_layers:
            layer.momentum = momentum
            layer.fixed_momentum = True  # read by tfmood.models.set_bn_momentum


def build_efficientnet(variant, input_shape, num_tags, source, duplicate_bands, dropout, drop_connect_rate,
                       backbone_bn_momentum, padding, imagenet, weights, imagenet_classes):
    spec = SOURCES.get(source)
    if padding is not None:
        padding = check_padding(padding)
    padding = spec.padding[variant] if padding is None else padding
    dropout = spec.dropout[variant] if dropout is None else dropout
    drop_connect_rate = spec.drop_connect_rate if drop_connect_rate is None else drop_connect_rate
    backbone_bn_momentum = spec.bn_momentum if backbone_bn_momentum is None else backbone_bn_momentum
    if weights and source != "timm":
        raise ValueError("weights= loads a timm backbone ported by tools/port_timm.py: it needs source='timm' "
                         f"(got source={source!r}).")
    if duplicate_bands is None:  # just enough copies for the backbone: 16 WaveNet bands -> 2 (HCMUS), 96 mel -> 1
        duplicate_bands = -(-MIN_ROWS // input_shape[0]) if input_shape[0] else 1
    if not isinstance(duplicate_bands, int) or duplicate_bands < 1:
        raise ValueError(f"duplicate_bands must be a positive integer (2 tiles 16 WaveNet bands to 32 rows), "
                         f"got {duplicate_bands!r}.")
    inputs = input_layer(input_shape)
    x = inputs
    if duplicate_bands > 1:  # HCMUS: np.tile(features, (2, 1)) stacks copies along frequency
        x = layers.Concatenate(axis=1, name="duplicate_bands")([inputs] * duplicate_bands)
    if imagenet_classes:  # the bare ImageNet classifier on RGB-like input (parameter counts, weight ports)
        logits = imagenet_classifier(spec.features(x, variant, drop_connect_rate, imagenet, padding),
                                     imagenet_classes, dropout)
        model = keras.Model(inputs, logits, name=f"efficientnet_{variant.lower()}_imagenet")
    else:
        features = spec.features(bw2col(x), variant, drop_connect_rate, imagenet, padding)
        model = keras.Model(inputs, tagging_head(features, num_tags, dropout), name=f"efficientnet_{variant.lower()}")
    if backbone_bn_momentum is not None:
        fix_backbone_bn_momentum(model, backbone_bn_momentum)
    if weights:
        from tfmood.models.timm_port import load_backbone  # torch-free part of the port
        load_backbone(model, weights)
    return model


def _builder(variant, default_shape, doc):
    def build(input_shape=default_shape, num_tags=56, source="keras", duplicate_bands=None, dropout=None,
              drop_connect_rate=None, backbone_bn_momentum=None, padding=None, imagenet=False, weights=None,
              imagenet_classes=None):
        return build_efficientnet(variant, input_shape, num_tags, source, duplicate_bands, dropout,
                                  drop_connect_rate, backbone_bn_momentum, padding, imagenet, weights,
                                  imagenet_classes)
    build.__doc__ = doc
    return build


register("efficientnet_b0")(_builder(
    "B0", (96, None, 1), "EfficientNet-B0 (keras.applications or timm-style) with the 1->3 channel stem; HCMUS 2020, "
    "SELAB 2021."))
register("efficientnet_b7")(_builder(
    "B7", (16, None, 1), "EfficientNet-B7 (keras.applications) on WaveNet features tiled to 32 rows; HCMUS 2020 "
    "run 3."))
