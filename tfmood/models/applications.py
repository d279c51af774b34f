"""Wrap `keras.applications` backbones so they accept any number of time frames.

`keras.applications` computes its stride-2 padding from a *fixed* input size and refuses `None`
dimensions, so we build the backbone at a fixed reference width and clone its graph onto an input with
a free time axis. The padding layers keep the reference padding, which is valid for any width.
"""

import keras

from tfmood.models.weights import build_application

_REFERENCE_FRAMES = 64  # any even width works; ImageNet weights do not depend on it


def strided_paddings(model):
    """`[(ZeroPadding2D, the strided conv it pads)]` in network order: keras.applications pads every strided
    convolution explicitly (`imagenet_utils.correct_pad`, by the parity of the input it was built on)."""
    pairs = []
    for pad, conv in zip(model.layers, model.layers[1:]):
        if isinstance(pad, keras.layers.ZeroPadding2D):
            if tuple(conv.strides) == (1, 1) or conv.input is not pad.output:
                raise ValueError(f"{model.name}: {pad.name} does not pad a strided convolution ({conv.name}).")
            pairs.append((pad, conv))
    return pairs


def variable_length_backbone(app_name: str, bands: int, imagenet: bool = False, padding=None, **kwargs):
    """`keras.applications.<app_name>(include_top=False)` on `[bands, None, 3]` input.

    `padding`: None keeps keras.applications' padding of the strided convolutions; a function
    `(index, conv) -> ((top, bottom), (left, right))` replaces it (index: 0 for the first strided conv)."""
    fixed = build_application(app_name, imagenet, include_top=False, input_shape=(bands, _REFERENCE_FRAMES, 3),
                              **kwargs)
    clone_function = None
    if padding is not None:
        replaced = {pad.name: padding(index, conv) for index, (pad, conv) in enumerate(strided_paddings(fixed))}

        def clone_function(layer):
            if layer.name in replaced:
                return keras.layers.ZeroPadding2D(replaced[layer.name], name=layer.name)
            return layer.__class__.from_config(layer.get_config())
    free = keras.models.clone_model(fixed, input_tensors=keras.Input((bands, None, 3)),
                                    clone_function=clone_function)
    free.set_weights(fixed.get_weights())
    for layer in free.layers:  # Normalization caches mean/variance tensors at build; set_weights does not refresh
        if hasattr(layer, "finalize_state"):  # them (loading a .keras file does), so EfficientNet's ImageNet
            layer.finalize_state()  # input statistics would otherwise be silently dropped
    return free
