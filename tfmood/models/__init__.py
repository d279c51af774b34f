"""The model zoo: every architecture is registered by name.

    from tfmood import models
    model = models.build("mobilenetv2", input_shape=(96, None, 1), num_tags=56)

`build` returns a Keras model mapping `[batch, bands, time, 1]` spectrograms to `[batch, num_tags]`
scores in [0, 1] for any number of time frames.
"""

from tfmood.registry import Registry

MODELS = Registry("model")
register = MODELS.register


def build(name: str, input_shape=(96, None, 1), num_tags: int = 56, **options):
    """Build the registered model `name`; unknown names raise `LookupError` listing the known ones."""
    return MODELS.get(name)(input_shape=tuple(input_shape), num_tags=num_tags, **options)


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
