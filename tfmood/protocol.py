"""The scoring protocol: how one clip of any length becomes one vector of tag scores.

    from tfmood.protocol import Protocol
    protocol = Protocol(crop_frames=960, segments=16)   # the default, MTG-Jamendo's evaluation setting
    crops = protocol.crops(mel)                         # [batch, bands, frames] -> [batch, 16, bands, 960]
    scores = protocol.score(model_fn, mel)              # mean of model_fn over the crops -> [batch, tags]

A clip is cut into `segments` crops of `crop_frames` frames starting at round(linspace(0, frames - crop,
segments)), the model scores every crop, and the clip's score is their mean. `short_clips` says what a
clip shorter than one crop does; the only rule is "tile": it is repeated along time to exactly one crop
(as the training crops pad), so the model never sees a length it was not trained on.

There is ONE implementation, `Protocol.crops` (TensorFlow ops), used by every entry point: the exported
model's `serving_default` and `serve_waveform` signatures (tfmood.export), `python -m tfmood.predict`
(which calls those signatures), `python -m tfmood.evaluate` and training validation (tfmood.data.pipeline
.eval_dataset). The protocol is a property of an exported model: it is written to the export's
`assets/tfmood.json` under "protocol" (and to a training run's summary.json), and read back from there.
"""

import dataclasses

DEFAULT_CROP_FRAMES = 960  # 20.5 s at MTG's 256-sample hop and 12 kHz
DEFAULT_SEGMENTS = 16
SHORT_CLIP_RULES = ("tile",)


@dataclasses.dataclass(frozen=True)
class Protocol:
    crop_frames: int = DEFAULT_CROP_FRAMES
    segments: int = DEFAULT_SEGMENTS
    short_clips: str = "tile"

    def __post_init__(self):
        for key in ("crop_frames", "segments"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Scoring protocol: `{key}` must be an integer >= 1. Received: {value!r}")
        if self.short_clips not in SHORT_CLIP_RULES:
            raise ValueError(f"Scoring protocol: `short_clips` must be one of {SHORT_CLIP_RULES}. "
                             f"Received: {self.short_clips!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values, source="the protocol"):
        """A Protocol from its `to_dict()` form; a clear error naming `source` for anything else."""
        if not isinstance(values, dict):
            raise ValueError(f"{source}: the scoring protocol must be a JSON object. Received: {values!r}")
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"{source}: unknown scoring protocol fields {unknown}.")
        try:
            return cls(**values)
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None

    def crops(self, mel):
        """[batch, bands, frames] -> [batch, segments, bands, crop_frames] (TF ops, graph-safe).

        Every clip of a batch has the same length, so the starts are shared; `segments` is static, so the
        crops are `segments` strided slices (no gather, no while loop: TF Serving runs it as is).
        """
        import tensorflow as tf

        mel = tf.convert_to_tensor(mel)
        crop = self.crop_frames
        frames = tf.shape(mel)[2]
        # The length check must run before the division below: in a graph only a data dependency orders them,
        # otherwise an empty clip may fail on "Integer division by zero" instead of this message.
        check = tf.debugging.assert_positive(frames, message="the clip needs at least one time frame")
        with tf.control_dependencies([check] if check is not None else []):
            frames = tf.identity(frames)
        # short_clips="tile": repeat a short clip along time to exactly one crop (every crop is then that one).
        repeats = (crop + frames - 1) // frames
        mel = tf.cond(frames < crop, lambda: tf.tile(mel, [1, 1, repeats])[:, :, :crop], lambda: mel)
        frames = tf.shape(mel)[2]
        starts = tf.cast(tf.round(tf.linspace(0.0, tf.cast(frames - crop, tf.float32), self.segments)),
                         tf.int32)
        crops = [tf.slice(mel, [0, 0, starts[i]], [-1, -1, crop]) for i in range(self.segments)]
        crops = tf.stack(crops, axis=1)
        return tf.ensure_shape(crops, [None, self.segments, mel.shape[1], crop])

    def score(self, model_fn, mel):
        """Mean of `model_fn` ([n, bands, crop] -> [n, tags]) over the crops of mel [batch, bands, frames]."""
        import tensorflow as tf

        def all_crops():
            crops = self.crops(mel)
            shape = tf.shape(crops)
            flat = tf.reshape(crops, [shape[0] * self.segments, shape[2], self.crop_frames])
            scores = tf.cast(model_fn(flat), tf.float32)
            return tf.reduce_mean(tf.reshape(scores, [shape[0], self.segments, -1]), axis=1)

        def one_crop():
            # A clip of at most one crop: every crop is the same (the tiled clip), and so is their mean. Score it
            # once instead of `segments` times (a 960-frame request would otherwise cost 16 model runs).
            return tf.cast(model_fn(self.crops(mel)[:, 0]), tf.float32)

        mel = tf.convert_to_tensor(mel)
        return tf.cond(tf.shape(mel)[2] <= self.crop_frames, one_crop, all_crops)
