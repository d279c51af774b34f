"""Small custom Keras layers shared by the zoo; each is registered so `.keras` files reload without custom_objects."""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="tfmood")
class FrequencyCoordinate(layers.Layer):
    """Append one channel holding each row's frequency position 2f/F - 1 (CP-JKU's FA-ResNet `getpad`).

    F is the *current* feature map's height, so after pooling the channel still spans [-1, 1 - 2/F];
    the value is constant along time, which keeps the layer valid for any number of frames.
    """

    def call(self, x):
        batch, bands, frames = ops.shape(x)[0], ops.shape(x)[1], ops.shape(x)[2]
        position = ops.arange(bands, dtype="float32") * (2.0 / ops.cast(bands, "float32")) - 1.0
        coordinate = ops.broadcast_to(ops.reshape(ops.cast(position, x.dtype), (1, -1, 1, 1)),
                                      (batch, bands, frames, 1))
        return ops.concatenate([x, coordinate], axis=-1)

    def compute_output_shape(self, input_shape):
        channels = None if input_shape[-1] is None else input_shape[-1] + 1
        return (*input_shape[:-1], channels)


@keras.saving.register_keras_serializable(package="tfmood")
class ShakeShake(layers.Layer):
    """Mix two residual branches: alpha*b1 + (1-alpha)*b2 forward, with an independent beta backward.

    Gastaldi 2017 "Shake-Shake regularization", per-sample ("Image") level, Shake-Shake-Image: alpha, beta ~ U(0, 1)
    drawn per example at every training call; 0.5 at inference. The backward coefficient is realised with the
    stop-gradient identity  beta*b1 + (1-beta)*b2 + sg((alpha-beta)*(b1-b2)), whose value is the alpha mix and
    whose gradient w.r.t. b1 is beta.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        first, second = inputs
        if not training:
            return 0.5 * (first + second)
        shape = (ops.shape(first)[0], 1, 1, 1)
        alpha = keras.random.uniform(shape, dtype=first.dtype, seed=self.seed_generator)
        beta = keras.random.uniform(shape, dtype=first.dtype, seed=self.seed_generator)
        return beta * first + (1.0 - beta) * second + ops.stop_gradient((alpha - beta) * (first - second))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="tfmood")
class WeightedAveragePool2D(layers.Layer):
    """`sum(values * weights) / sum(weights)` over frequency and time (CP-JKU's `AttentionAvg` head)."""

    def call(self, inputs):
        values, weights = inputs
        return ops.sum(values * weights, axis=(1, 2)) / (ops.sum(weights, axis=(1, 2)) + 1e-7)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[0][-1])


@keras.saving.register_keras_serializable(package="tfmood")
class ChannelSplit(layers.Layer):
    """Split the channel axis into consecutive groups of the given sizes (MixConv groups, ReXNet's partial residual)."""

    def __init__(self, sizes, **kwargs):
        super().__init__(**kwargs)
        self.sizes = [int(s) for s in sizes]

    def call(self, x):
        bounds = [sum(self.sizes[:i]) for i in range(len(self.sizes) + 1)]
        return [x[..., start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]

    def compute_output_shape(self, input_shape):
        return [(*input_shape[:-1], size) for size in self.sizes]

    def get_config(self):
        return {**super().get_config(), "sizes": self.sizes}
