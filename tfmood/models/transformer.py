"""A small BERT-style (post-LayerNorm) transformer encoder over a sequence of segment embeddings.

Follows AMLAG 2019's `self_attention.py` (systems.md §B3), itself a copy of the original BERT code: fixed
sinusoidal positions added to the tokens (no learned embedding, no embedding LayerNorm), post-LN layers with
exact-erf GELU, LayerNorm eps 1e-12, and a tanh "pooler" on token 0.
"""

import numpy as np
import keras
from keras import layers, ops


def sinusoidal_table(length: int, dim: int) -> np.ndarray:
    """`[length, dim]` table: entry j of position p is sin/cos(p / 10000^(2*floor(j/2)/dim)); row 0 is all zero.

    Row 0 stays zero because AMLAG copied a table whose position 0 was reserved for padding tokens; its cos
    entries are therefore 0, not cos(0) = 1.
    """
    positions = np.arange(length, dtype=np.float64)[:, None]
    exponents = 2 * (np.arange(dim) // 2) / dim
    angles = positions / np.power(10000.0, exponents)[None, :]
    table = np.zeros((length, dim))
    table[1:, 0::2] = np.sin(angles[1:, 0::2])
    table[1:, 1::2] = np.cos(angles[1:, 1::2])
    return table.astype("float32")


@keras.saving.register_keras_serializable(package="tfmood")
class SinusoidalPositions(layers.Layer):
    """Adds the fixed sinusoidal position table to `[batch, n, dim]` tokens, for any n <= `max_length`."""

    def __init__(self, max_length: int = 64, **kwargs):
        super().__init__(**kwargs)
        if max_length < 1:
            raise ValueError(f"`max_length` must be >= 1. Received: {max_length}")
        self.max_length = int(max_length)

    def build(self, input_shape):
        self.table = ops.convert_to_tensor(sinusoidal_table(self.max_length, int(input_shape[-1])))

    def call(self, tokens):
        import tensorflow as tf

        length = ops.shape(tokens)[1]
        # A longer sequence would silently broadcast-fail deep in the graph; say what to change instead.
        tf.debugging.assert_less_equal(
            length, self.max_length,
            message=f"more segments than the positional table holds ({self.max_length}); rebuild the model "
                    "with a larger `max_segments` or evaluate shorter crops")
        return tokens + ops.cast(self.table[:length], tokens.dtype)[None]

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length}


def encoder_layer(x, heads: int, ffn: int, attention_dropout: float, dropout: float, name: str):
    """One post-LN BERT layer: x = LN(x + Drop(MHA(x))); x = LN(x + Drop(W2 GELU(W1 x)))."""
    hidden = x.shape[-1]
    if hidden % heads:
        raise ValueError(f"hidden size {hidden} must be divisible by `heads`. Received: heads={heads}")
    attended = layers.MultiHeadAttention(heads, hidden // heads, dropout=attention_dropout, name=f"{name}_mha")(x, x)
    attended = layers.Dropout(dropout, name=f"{name}_mha_dropout")(attended)
    x = layers.LayerNormalization(epsilon=1e-12, name=f"{name}_mha_norm")(layers.Add()([x, attended]))
    expanded = layers.Dense(ffn, activation="gelu", name=f"{name}_ffn_in")(x)  # keras "gelu" is the exact erf form
    projected = layers.Dense(hidden, name=f"{name}_ffn_out")(expanded)
    projected = layers.Dropout(dropout, name=f"{name}_ffn_dropout")(projected)
    return layers.LayerNormalization(epsilon=1e-12, name=f"{name}_ffn_norm")(layers.Add()([x, projected]))


def encode_and_pool(tokens, num_layers=2, heads=4, ffn=1024, attention_dropout=0.1, dropout=0.2, max_length=64,
                    name="attention"):
    """Positions -> `num_layers` encoder layers -> tanh pooler on token 0 -> `[batch, hidden]`."""
    x = SinusoidalPositions(max_length, name=f"{name}_positions")(tokens)
    for i in range(num_layers):
        x = encoder_layer(x, heads, ffn, attention_dropout, dropout, name=f"{name}_layer{i + 1}")
    first = FirstToken(name=f"{name}_first_token")(x)
    return layers.Dense(tokens.shape[-1], activation="tanh", name=f"{name}_pooler")(first)


@keras.saving.register_keras_serializable(package="tfmood")
class FirstToken(layers.Layer):
    """`[batch, n, dim] -> [batch, dim]`: BERT's pooler reads the first token only."""

    def call(self, tokens):
        return tokens[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])
