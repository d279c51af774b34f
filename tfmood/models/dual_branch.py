"""A tagger with two sigmoid branches, scored by their mean and trained on the mean of their losses.

AMLAG 2019 (systems.md §B5): `loss = (BCE(att, y) + BCE(clf, y)) / 2`, `prediction = (att + clf) / 2`.
Training the mean score instead would let one branch lean on the other; each branch must fit the labels.

    tagger = DualBranchTagger(branches)      # branches: keras.Model, inputs -> {"att": s1, "clf": s2}
    tagger.compile("adam", loss="binary_crossentropy")   # any compiled loss (BCE, focal, ...) works
    tagger.fit(...)                          # loss = mean over branches of the compiled loss (+ model losses)
    scores = tagger(x)                       # [batch, num_tags] = (att + clf) / 2

Keras' `train_step` computes `y_pred = model(x)` and then calls `compute_loss(x, y, y_pred)`. `call` keeps the
branch outputs of the forward pass that produced `y_pred`, so `compute_loss` reuses them (one forward pass,
the same dropout masks) and stays inside the stock `fit` / `evaluate` loops, distribution and mixed precision
included. The memo is thread-local because `MirroredStrategy` runs one replica per thread.
"""

import threading

import keras
from keras import ops

BRANCHES = ("att", "clf")


@keras.saving.register_keras_serializable(package="tfmood")
class DualBranchTagger(keras.Model):
    """Mean of two sigmoid branches; trained on the mean of the compiled loss over both branches."""

    def __init__(self, branches: keras.Model, **kwargs):
        super().__init__(**kwargs)
        # === Layers ===
        self.branches = branches
        self._memo = threading.local()
        self.build(branches.input_shape)  # built like a functional model: count_params/summary work at once

    def build(self, input_shape):
        pass  # `branches` is a built functional model: nothing to create

    def call(self, inputs, training=None):
        outputs = self.branches(inputs, training=training)
        scores = ops.mean(ops.stack([outputs[k] for k in BRANCHES]), axis=0)
        self._memo.last = (scores, outputs)
        return scores

    def branch_outputs(self, x, y_pred=None, training=False) -> dict:
        """The branch outputs behind `y_pred` when it came from the last `call`, else a fresh forward pass."""
        last = getattr(self._memo, "last", None)
        if y_pred is not None and last is not None and last[0] is y_pred:
            return last[1]
        return self.branches(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # The parent adds the model's own losses (`self.losses`) to each term; they are equal, so the
        # mean keeps them once: mean(a + c, b + c) = mean(a, b) + c.
        outputs = self.branch_outputs(x, y_pred, training)
        losses = [super(DualBranchTagger, self).compute_loss(x, y, outputs[k], sample_weight, training)
                  for k in BRANCHES]
        return ops.mean(ops.stack(losses))

    # === Config ===
    def get_config(self):
        config = super().get_config()
        config["branches"] = keras.saving.serialize_keras_object(self.branches)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        branches = keras.saving.deserialize_keras_object(config.pop("branches"), custom_objects=custom_objects)
        return cls(branches, **config)
