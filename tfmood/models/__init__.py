"""The model zoo: every architecture is registered by name.

    from tfmood import models
    model = models.build("mobilenetv2", input_shape=(96, None, 1), num_tags=56)

`build` returns a Keras model mapping `[batch, bands, time, 1]` spectrograms to `[batch, num_tags]`
scores in [0, 1] for any number of time frames.
"""

from tfmood.registry import Registry

MODELS = Registry("model")
register = MODELS.register


# The seed systems are PyTorch models, whose batch norm momentum 0.1 is Keras' 0.9. keras.applications uses
# 0.999: its inference statistics then trail the weights for thousands of steps, and a short run (the
# demo) scores at chance in inference mode while it learns in training mode.
BN_MOMENTUM = 0.9


def build(name: str, input_shape=(96, None, 1), num_tags: int = 56, bn_momentum: float = BN_MOMENTUM, **options):
    """Build the registered model `name`; unknown names raise `LookupError` listing the known ones.

    `bn_momentum` is applied to every BatchNormalization layer (None keeps each model's own), except layers a
    builder marked `fixed_momentum` because its source's value differs (e.g. `efficientnet_b0`'s
    `backbone_bn_momentum=0.99`, efficientnet_pytorch's 0.01 in PyTorch terms).
    """
    model = MODELS.get(name)(input_shape=tuple(input_shape), num_tags=num_tags, **options)
    if bn_momentum is not None:
        set_bn_momentum(model, bn_momentum)
    return model


def set_bn_momentum(model, momentum: float) -> int:
    """Set the moving-statistics momentum of every BatchNormalization layer, nested ones included, except those
    marked `fixed_momentum`."""
    import keras

    layers = [l for l in model._flatten_layers(include_self=False, recursive=True)
              if isinstance(l, keras.layers.BatchNormalization) and not getattr(l, "fixed_momentum", False)]
    for layer in layers:
        layer.momentum = momentum
    return len(layers)


def names() -> list:
    return MODELS.names()


def describe() -> dict:
    return MODELS.describe()


# Importing the modules fills the registry.
from tfmood.models import mobilenetv2  # noqa: E402,F401
from tfmood.models import vggish  # noqa: E402,F401
from tfmood.models import attention  # noqa: E402,F401
from tfmood.models import cp_resnet, fa_resnet, shake_fa_resnet  # noqa: E402,F401
from tfmood.models import efficientnet  # noqa: E402,F401
from tfmood.models import vqvae  # noqa: E402,F401
from tfmood.models import crnn, resnet34  # noqa: E402,F401
from tfmood.models import rexnet  # noqa: E402,F401
from tfmood.models import mixnet  # noqa: E402,F401
