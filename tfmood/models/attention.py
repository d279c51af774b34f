"""Segment CNN + self-attention taggers: AMLAG 2019 (MobileNetV2) and UAI-CNRL 2020 (ResNet34).

Sukhavasi & Adapa, "Music theme recognition using CNN and self-attention", MediaEval 2019 (arXiv 1911.07041);
Dipani et al., MediaEval 2020 (seeds/003_*). systems.md §B2-B6.

    model = models.build("attention_mobilenetv2", input_shape=(96, None, 1))   # 256-frame segments
    model.compile("adam", loss="binary_crossentropy")   # trains both branches: (L(att) + L(clf)) / 2

Each 256-frame segment goes through bw2col -> CNN features -> out_conv (3x3 valid, 512, ReLU -> 1x1, 256, ReLU)
-> global max = one token. Two heads share the tokens: a 2-layer BERT-style encoder + tanh pooler on token 0
(`att`), and a per-segment classifier averaged over segments (`clf`). Both branches are trained (mean of their
losses); the scores are (att + clf) / 2 for AMLAG, the `att` branch alone for UAI-CNRL (`prediction`).

Differs from AMLAG: the number of segments follows the crop (`ceil(frames / segment_frames)`, tiled up) instead
of a fixed 16, so the model evaluates crops of any length (up to `max_segments` positions); ImageNet weights
are opt-in (`imagenet=True`). UAI-CNRL (seeds/003 §4.2, systems.md §B6): each segment goes through two
convolutions to 3 channels, then a standard ResNet-34 (`tfmood.models.resnet34` on 3 channels, no ImageNet weights
in Keras), then a channel-reducing convolution; predictions come from the attention branch only. The paper does
not give the stem's widths, the reducing convolution or the dropout ([UNVERIFIED]): AMLAG's bw2col (BN, 1x1 to 10,
1x1 to 3) and out_conv, which the paper says it follows, are used; `stem=None` drops the stem (1-channel trunk).
`head_padding="same"` lets tiny test inputs (feature maps under 3x3) through the 3x3 out_conv.
"""

import keras
from keras import layers

from tfmood.models import register
from tfmood.models.dual_branch import DualBranchTagger
from tfmood.models.mobilenetv2 import mobilenetv2_backbone
from tfmood.models.segments import MergeSegments, SplitSegments
from tfmood.models.stem import bw2col, input_layer
from tfmood.models.transformer import encode_and_pool
from tfmood.registry import Registry

SEGMENT_CNNS = Registry("segment CNN")


@SEGMENT_CNNS.register("mobilenetv2")
def mobilenetv2_features(segments, imagenet=False, alpha=1.0, source="keras"):
    """bw2col -> MobileNetV2 features (1280 x max(1, alpha) channels, /32); `source` as `mobilenetv2`'s:
    "torchvision" is AMLAG's network (symmetric padding, BN eps 1e-5), "keras" keras.applications'."""
    backbone = mobilenetv2_backbone(source, segments.shape[1], alpha, imagenet)
    return backbone(bw2col(segments, name="segment_stem"))


@SEGMENT_CNNS.register("resnet34")
def resnet34_features(segments, imagenet=False, width=64, stem="bw2col"):
    """UAI-CNRL: 2 convs to 3 channels (`stem`) -> the zoo's ResNet-34 trunk (8 x width channels, /32).

    Keras ships no ImageNet ResNet-34. `stem=None` feeds the 1-channel segments to the trunk directly.
    """
    from tfmood.models.resnet34 import resnet34_features as trunk

    if imagenet:
        raise ValueError("attention_resnet34 has no ImageNet weights (Keras ships no ResNet-34); drop `imagenet`")
    if stem not in ("bw2col", None):
        raise ValueError(f"`stem` must be 'bw2col' (two convolutions to 3 channels) or None. Received: {stem!r}")
    x = bw2col(segments, name="segment_stem") if stem else segments
    return trunk(x, width, name="segment_resnet34")


def segment_tokens(segments, cnn_name, imagenet, conv_width, hidden, head_padding, cnn_options, name="segment"):
    """`[n_segments, bands, S, 1] -> [n_segments, hidden]`: AMLAG's CNN + out_conv + global max."""
    x = SEGMENT_CNNS.get(cnn_name)(segments, imagenet=imagenet, **cnn_options)
    if head_padding == "valid" and (x.shape[1] < 3 or x.shape[2] < 3):
        raise ValueError(f"the CNN maps a {segments.shape[1]}x{segments.shape[2]} segment to "
                         f"{x.shape[1]}x{x.shape[2]}, too small for the 3x3 'valid' out_conv: use more bands or "
                         "`segment_frames`, or head_padding='same'")
    x = layers.Conv2D(conv_width, 3, padding=head_padding, activation="relu", name=f"{name}_out_conv1")(x)
    x = layers.Conv2D(hidden, 1, activation="relu", name=f"{name}_out_conv2")(x)
    return layers.GlobalMaxPooling2D(name=f"{name}_max")(x)


def segment_classifier(tokens, num_tags, hidden, dropout, name="clf"):
    """AMLAG §B4: Dropout -> Dense -> Dropout -> Dense -> sigmoid per segment (no activation between), mean."""
    x = layers.Dropout(dropout, name=f"{name}_dropout1")(tokens)
    x = layers.Dense(hidden, name=f"{name}_dense1")(x)
    x = layers.Dropout(dropout, name=f"{name}_dropout2")(x)
    x = layers.Dense(num_tags, activation="sigmoid", dtype="float32", name=f"{name}_scores")(x)
    return layers.GlobalAveragePooling1D(name=f"{name}_mean", dtype="float32")(x)


def attention_classifier(tokens, num_tags, dropout, max_segments, num_layers, heads, ffn, attention_dropout,
                         name="att"):
    """AMLAG §B3: sinusoidal positions -> BERT encoder -> tanh pooler -> Dropout -> Dense sigmoid."""
    pooled = encode_and_pool(tokens, num_layers, heads, ffn, attention_dropout, dropout, max_segments, name=name)
    pooled = layers.Dropout(dropout, name=f"{name}_dropout")(pooled)
    return layers.Dense(num_tags, activation="sigmoid", dtype="float32", name=f"{name}_scores")(pooled)


def build_attention_tagger(name, cnn_name, input_shape=(96, None, 1), num_tags=56, segment_frames=256,
                           max_segments=64, hidden=256, conv_width=512, num_layers=2, heads=4, ffn=1024,
                           dropout=0.2, attention_dropout=0.1, head_padding="valid", imagenet=False, prediction="mean",
                           **cnn_options):
    """Segment CNN (`SEGMENT_CNNS[cnn_name]`) + attention and segment-classifier branches, as a DualBranchTagger.

    `prediction`: the tagger's scores, "mean" of both branches (AMLAG) or one branch ("att": UAI-CNRL).
    """
    if head_padding not in ("valid", "same"):
        raise ValueError(f"`head_padding` must be 'valid' or 'same'. Received: {head_padding!r}")
    inputs = input_layer(input_shape)
    segments = SplitSegments(segment_frames, name="segments")(inputs)
    features = segment_tokens(segments, cnn_name, imagenet, conv_width, hidden, head_padding, cnn_options)
    tokens = MergeSegments(name="tokens")([features, inputs])
    outputs = {
        "att": attention_classifier(tokens, num_tags, dropout, max_segments, num_layers, heads, ffn,
                                    attention_dropout),
        "clf": segment_classifier(tokens, num_tags, hidden, dropout),
    }
    return DualBranchTagger(keras.Model(inputs, outputs, name=f"{name}_branches"), prediction=prediction, name=name)


@register("attention_mobilenetv2")
def build_attention_mobilenetv2(input_shape=(96, None, 1), num_tags=56, alpha=1.0, source="keras", **options):
    """MobileNetV2 segment CNN + self-attention, two branches (AMLAG 2019 submission 2); `source` as mobilenetv2's."""
    return build_attention_tagger("attention_mobilenetv2", "mobilenetv2", input_shape, num_tags, alpha=alpha,
                                  source=source, **options)


@register("attention_resnet34")
def build_attention_resnet34(input_shape=(96, None, 1), num_tags=56, width=64, stem="bw2col", prediction="att",
                              **options):
    """2-conv stem + ResNet34 segment CNN + self-attention; trains both branches, predicts from `att` (UAI-CNRL)."""
    return build_attention_tagger("attention_resnet34", "resnet34", input_shape, num_tags, width=width, stem=stem,
                                  prediction=prediction, **options)
