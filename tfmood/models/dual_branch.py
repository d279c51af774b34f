"""A tagger with two sigmoid branches, trained on the mean of their losses and scored by both or by one.

AMLAG 2019 (systems.md §B5): `loss = (BCE(att, y) + BCE(clf, y)) / 2`, `prediction = (att + clf) / 2`.
UAI-CNRL 2020 (seeds/003 §4.2) trains on the same two-branch loss but predicts from the attention branch only:
`prediction="att"`. Training the mean score instead would let one branch lean on the other; each branch must fit
the labels.

    tagger = DualBranchTagger(branches)      # branches: keras.Model, inputs -> {"att": s1, "clf": s2}
    tagger = DualBranchTagger(branches, prediction="att")   # scores = s1 (UAI-CNRL), same loss
    tagger.compile("adam", loss="binary_crossentropy")   # any compiled loss (BCE, focal, ...) works
    tagger.fit(...)                          # loss = mean over branches of the compiled loss (+ model losses)
    scores = tagger(x)                       # [batch, num_tags] = (att + clf) / 2, or att

The tagger is a functional model (`inputs -> branches -> BranchMean`), so everything that inspects
functional models (`input_shape`, `layers`, export) works. Keras' `train_step` computes `y_pred = model(x)`,
then `compute_loss(x, y, y_pred)`; the `BranchMean` layer remembers the branch outputs behind the scores it
returned, so `compute_loss` reuses them (one forward pass, the same dropout masks) inside the stock `fit` /
`evaluate` loops, distribution and mixed precision included. The memo is thread-local because
`MirroredStrategy` runs one replica per thread.
"""

import threading

import keras
from keras import layers, ops

BRANCHES = ("att", "clf")
PREDICTIONS = ("mean", *BRANCHES)  # what the tagger's scores are: the branch mean (AMLAG) or one branch


def check_prediction(prediction):
    if prediction not in PREDICTIONS:
        raise ValueError(f"`prediction` must be one of {PREDICTIONS}. Received: {prediction!r}")
    return prediction


@keras.saving.register_keras_serializable(package="tfmood")
class BranchMean(layers.Layer):
    """`{"att": s1, "clf": s2} -> (s1 + s2) / 2` (or one branch, `prediction`), remembering its latest inputs."""

    def __init__(self, prediction="mean", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.prediction = check_prediction(prediction)
        self._memo = threading.local()

    def call(self, branches):
        if self.prediction == "mean":
            scores = ops.mean(ops.stack([branches[k] for k in BRANCHES]), axis=0)
        else:  # a new tensor, so that `branches_behind` can tell this output from the branch's own
            scores = ops.add(branches[self.prediction], 0.0)
        self._memo.last = (scores, branches)
        return scores

    def get_config(self):
        return {**super().get_config(), "prediction": self.prediction}

    def compute_output_shape(self, input_shapes):
        return input_shapes[BRANCHES[0]]

    def branches_behind(self, scores):
        """The branch outputs that produced `scores` when they are this layer's latest output, else None."""
        last = getattr(self._memo, "last", None)
        return last[1] if last is not None and last[0] is scores else None


@keras.saving.register_keras_serializable(package="tfmood")
class DualBranchTagger(keras.Model):
    """Two sigmoid branches scored by their mean (or one of them); trained on the mean of the compiled loss
    over both branches."""

    def __init__(self, branches: keras.Model, prediction: str = "mean", **kwargs):
        # === Functional Model ===
        inputs = keras.Input(shape=branches.input_shape[1:], name=branches.inputs[0].name)
        scores = BranchMean(check_prediction(prediction), name="scores")(branches(inputs))
        super().__init__(inputs, scores, **kwargs)
        # === Config ===
        self.branches = branches
        self.prediction = prediction

    def branch_outputs(self, x, y_pred=None, training=False) -> dict:
        """The branch outputs behind `y_pred` when it came from the last forward pass, else a fresh one."""
        found = None if y_pred is None else self.get_layer("scores").branches_behind(y_pred)
        return found if found is not None else self.branches(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # The parent adds the model's own losses (`self.losses`) to each term; they are equal, so the
        # mean keeps them once: mean(a + c, b + c) = mean(a, b) + c.
        outputs = self.branch_outputs(x, y_pred, training)
        losses = [super(DualBranchTagger, self).compute_loss(x, y, outputs[k], sample_weight, training)
                  for k in BRANCHES]
        return ops.mean(ops.stack(losses))

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, "prediction": self.prediction,
                "branches": keras.saving.serialize_keras_object(self.branches)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        branches = keras.saving.deserialize_keras_object(config.pop("branches"), custom_objects=custom_objects)
        return cls(branches, **config)
