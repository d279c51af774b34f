"""Cut a spectrogram into contiguous fixed-length segments for a per-segment CNN, and gather them back.

AMLAG 2019 (systems.md §B2) reshapes a 4096-frame crop into 16 segments of 256 frames. Here the number of
segments follows the input, `n = ceil(frames / segment_frames)`, so one model scores crops of any length;
a crop that is not a multiple of `segment_frames` is tiled (repeated from its start), as AMLAG tiles short
tracks, rather than zero-padded, so every segment holds real music.
"""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="tfmood")
class SplitSegments(layers.Layer):
    """`[batch, bands, frames, ch] -> [batch * n, bands, segment_frames, ch]`, segments of one track adjacent."""

    def __init__(self, segment_frames: int = 256, **kwargs):
        super().__init__(**kwargs)
        if segment_frames < 1:
            raise ValueError(f"`segment_frames` must be >= 1. Received: {segment_frames}")
        self.segment_frames = int(segment_frames)

    def call(self, x):
        batch, bands, frames, channels = ops.shape(x)[0], x.shape[1], ops.shape(x)[2], x.shape[3]
        count = (frames + self.segment_frames - 1) // self.segment_frames
        x = ops.take(x, ops.arange(count * self.segment_frames) % frames, axis=2)  # tile up to n * S frames
        x = ops.reshape(x, (batch, bands, count, self.segment_frames, channels))
        x = ops.transpose(x, (0, 2, 1, 3, 4))
        return ops.reshape(x, (-1, bands, self.segment_frames, channels))

    def compute_output_shape(self, input_shape):
        return (None, input_shape[1], self.segment_frames, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "segment_frames": self.segment_frames}


@keras.saving.register_keras_serializable(package="tfmood")
class MergeSegments(layers.Layer):
    """`([batch * n, dim], reference [batch, ...]) -> [batch, n, dim]`: the inverse grouping of `SplitSegments`."""

    def call(self, inputs):
        features, reference = inputs
        return ops.reshape(features, (ops.shape(reference)[0], -1, features.shape[-1]))

    def compute_output_shape(self, input_shapes):
        features, reference = input_shapes
        return (reference[0], None, features[-1])
