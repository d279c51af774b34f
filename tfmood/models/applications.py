"""Wrap `keras.applications` backbones so they accept any number of time frames.

`keras.applications` computes its stride-2 padding from a *fixed* input size and refuses `None`
dimensions, so we build the backbone at a fixed reference width and clone its graph onto an input with
a free time axis. The padding layers keep the reference padding, which is valid for any width.
"""

import keras

from tfmood.models.weights import build_application

_REFERENCE_FRAMES = 64  # any even width works; ImageNet weights do not depend on it


def variable_length_backbone(app_name: str, bands: int, imagenet: bool = False, **kwargs):
    """`keras.applications.<app_name>(include_top=False)` on `[bands, None, 3]` input."""
    fixed = build_application(app_name, imagenet, include_top=False, input_shape=(bands, _REFERENCE_FRAMES, 3),
                              **kwargs)
    free = keras.models.clone_model(fixed, input_tensors=keras.Input((bands, None, 3)))
    free.set_weights(fixed.get_weights())
    for layer in free.layers:  # Normalization caches mean/variance tensors at build; set_weights does not refresh
        if hasattr(layer, "finalize_state"):  # them (loading a .keras file does), so EfficientNet's ImageNet
            layer.finalize_state()  # input statistics would otherwise be silently dropped
    return free
