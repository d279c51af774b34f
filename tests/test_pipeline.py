"""tf.data pipeline and augmentations, each checked eagerly and inside Dataset.map."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tfmood.data import augment, convert, framestore, pipeline, schema
from tfmood.tags import NUM_TAGS


def ramp(bands=4, frames=10):
    """Features whose value encodes the frame index, so crops reveal their offsets."""
    return tf.constant(np.tile(np.arange(frames, dtype=np.float32), (bands, 1)))


def run_both(fn, *args):
    """The op's result eagerly and inside a Dataset.map (graph mode)."""
    eager = fn(*args)
    ds = tf.data.Dataset.from_tensors(args).map(lambda *a: fn(*a))
    return eager, next(iter(ds))


def test_random_crop_takes_contiguous_windows_and_tiles_short_tracks():
    for crops in run_both(lambda x: augment.random_crop(x, 4, 3), ramp(frames=12)):
        assert crops.shape == (3, 4, 4)
        starts = crops[:, 0, 0].numpy()
        np.testing.assert_array_equal(crops[:, 0, :].numpy(), starts[:, None] + np.arange(4))
        assert (np.diff(starts) >= 0).all()  # stratified: crop k lies in the k-th span
    for crops in run_both(lambda x: augment.random_crop(x, 7, 2), ramp(frames=3)):
        np.testing.assert_array_equal(crops[0, 0].numpy() % 3, (crops[0, 0, 0].numpy() + np.arange(7)) % 3)


def test_evenly_spaced_segments_cover_the_track():
    for segs in run_both(lambda x: augment.evenly_spaced_segments(x, 4, 3), ramp(frames=10)):
        np.testing.assert_array_equal(segs[:, 0, 0].numpy(), [0, 3, 6])
        assert segs[-1, 0, -1] == 9


def test_spec_augment_masks_with_the_minimum_and_respects_probability():
    x = np.random.default_rng(1).normal(10, 1, (6, 20, 50)).astype(np.float32)
    x[:, 0, 0] = -100  # the fill value, at a known cell that the checks below leave out
    x = tf.constant(x)
    for out in run_both(lambda v: augment.spec_augment(v, probability=1.0, max_time_fraction=0.2,
                                                       max_freq_fraction=0.2), x):
        changed = out.numpy() != x.numpy()
        assert changed.any()
        mins = x.numpy().min(axis=(1, 2))
        for b in range(6):
            assert np.allclose(out.numpy()[b][changed[b]], mins[b])
            # masks are whole bands: every changed cell lies in a fully masked row or column
            masked = out.numpy()[b] == mins[b]
            rows, cols = masked[1:, :].all(axis=1), masked[:, 1:].all(axis=0)
            rows, cols = np.r_[masked[0, 1:].all(), rows], np.r_[masked[1:, 0].all(), cols]
            expected = rows[:, None] | cols[None, :]
            expected[0, 0] = masked[0, 0]
            assert (masked == expected).all()
            assert rows.sum() <= 2 * 4 and cols.sum() <= 2 * 10
    for out in run_both(lambda v: augment.spec_augment(v, probability=0.0), x):
        np.testing.assert_array_equal(out.numpy(), x.numpy())


def test_mixup_mixes_inputs_and_targets_with_the_same_lambda():
    n = 8
    x = tf.constant(np.arange(n, dtype=np.float32)[:, None, None] * np.ones((1, 3, 5), np.float32))
    y = tf.one_hot(tf.range(n), n)
    for mx, my in run_both(lambda a, b: augment.mixup(a, b, 0.4), x, y):
        np.testing.assert_allclose(mx.numpy()[:, 0, 0], my.numpy() @ np.arange(n), atol=1e-5)
        np.testing.assert_allclose(my.numpy().sum(axis=1), 1.0, atol=1e-6)
        assert (my.numpy() >= 0).all() and not np.allclose(my.numpy(), y.numpy())


def test_rarest_tag_keeps_the_least_frequent_training_tag():
    counts = np.arange(NUM_TAGS, 0, -1)  # tag 55 is the rarest
    labels = np.zeros((3, NUM_TAGS), np.float32)
    labels[0, [1, 5, 9]] = 1
    labels[1, [55, 0]] = 1
    for out in run_both(lambda y: augment.rarest_tag(y, counts), tf.constant(labels)):
        assert out.numpy()[0].nonzero()[0].tolist() == [9]
        assert out.numpy()[1].nonzero()[0].tolist() == [55]
        assert out.numpy()[2].sum() == 0  # no tags stays no tags


def test_train_dataset_batches_all_crops(tiny_records, tiny_source):
    _, splits = tiny_source
    ds = pipeline.train_dataset(tiny_records, batch_size=8, crop_frames=32, seed=0)
    batches = list(ds)
    x, y = batches[0]
    assert x.shape == (8, 96, 32, 1) and y.shape == (8, NUM_TAGS)
    frames = [round(t.duration * 12000 / 256) for t in splits["train"]]
    expected = sum(max(1, (f + 16) // 32) for f in frames)
    assert len(batches) == expected // 8 == ds.cardinality()


def test_train_dataset_label_balancing_and_mixup(tiny_records):
    ds = pipeline.train_dataset(tiny_records, batch_size=16, crop_frames=32, label_balancing=True,
                                spec_augment=False, seed=0)
    for _, y in ds.take(3):
        np.testing.assert_array_equal(y.numpy().sum(axis=1), 1.0)
    ds = pipeline.train_dataset(tiny_records, batch_size=16, crop_frames=32, mixup_alpha=0.5, seed=0)
    _, y = next(iter(ds))
    assert ((y.numpy() > 0) & (y.numpy() < 1)).any()
    with pytest.raises(ValueError, match="crop_frames"):
        pipeline.train_dataset(tiny_records, crop_frames=0)


def test_eval_dataset_keeps_tsv_order_and_every_track(tiny_records, tiny_source):
    _, splits = tiny_source
    ids = [int(e["track_id"]) for e in pipeline.eval_dataset(tiny_records, "validation", 32, 3)]
    assert ids == [t.track_id for t in splits["validation"]]


def test_predict_tracks_averages_segment_scores(tiny_records, tiny_source):
    _, splits = tiny_source

    def fake_model(x):  # score = the segment's mean value, identical in every column
        return np.repeat(tf.reduce_mean(x, axis=[1, 2, 3]).numpy()[:, None], NUM_TAGS, axis=1)

    ids, scores, labels = pipeline.predict_tracks(fake_model, tiny_records, "test", crop_frames=16,
                                                  segments=3, batch_size=7)
    assert ids.tolist() == [t.track_id for t in splits["test"]]
    assert scores.shape == labels.shape == (56, NUM_TAGS) and labels.dtype == bool
    segs = [e["segments"].numpy().mean(axis=(1, 2, 3)).mean()
            for e in pipeline.eval_dataset(tiny_records, "test", 16, 3)]
    np.testing.assert_allclose(scores[:, 0], segs, rtol=1e-5)


def whole_tracks(records_dir, split="train", dtype="float32"):
    """track_id -> [bands, frames] features, decoded from the whole-track records."""
    out = {}
    for path in pipeline.list_shards(records_dir, split):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            track_id, _, features = schema.decode_numpy(record, dtype)
            out[track_id] = features
    return out


def test_frame_store_crops_equal_whole_track_crops(tiny_records):
    store = framestore.ensure(tiny_records, "train")
    tracks = whole_tracks(tiny_records)
    assert sorted(store.track_id.tolist()) == sorted(tracks)
    rng = np.random.default_rng(0)
    for crop in (32, 100):  # 100 > some tracks' 40-120 frames: those crops come from the repeated track
        room = store.effective_frames(crop) - crop + 1
        for t in range(len(store)):
            starts = [0, room[t] - 1, int(rng.integers(room[t]))]
            got = store.crops([t] * 3, starts, crop).transpose(0, 2, 1)
            whole = augment.tile_to_length(tf.constant(tracks[int(store.track_id[t])]), crop)
            np.testing.assert_array_equal(got, augment.crops_at(whole, tf.constant(starts), crop).numpy())
            np.testing.assert_array_equal(store.labels[t] > 0, store.labels[t] == 1)


def test_every_frame_is_reachable_by_the_plan(tiny_records):
    """The store holds every frame of every track, and the plan's starts span 0 .. frames - crop."""
    store = framestore.ensure(tiny_records, "train")
    tracks = whole_tracks(tiny_records)
    for t in range(len(store)):
        whole = store.crops([t], [0], int(store.frames[t]))[0].T
        np.testing.assert_array_equal(whole, tracks[int(store.track_id[t])])
    crop = 32
    frames = store.effective_frames(crop)
    room = frames - crop + 1
    for count in (np.ones_like(room), np.maximum(1, (store.frames + crop // 2) // crop)):
        first = augment.stratified_starts(frames, crop, 0, count, np.zeros(len(room), np.float32))
        last = augment.stratified_starts(frames, crop, count - 1, count, np.full(len(room), 1 - 1e-7, np.float32))
        np.testing.assert_array_equal(first, 0)
        np.testing.assert_array_equal(last, room - 1)


def test_frame_store_is_reused_rebuilt_when_records_change_and_checked(tiny_source, tmp_path):
    """An old record folder gets its store on first use; a re-conversion (here to float16) rebuilds it."""
    root, splits = tiny_source
    out = str(tmp_path / "records")
    small = {"train": splits["train"][:8]}
    convert.run(small, convert.Options(features_root=str(root / "features"), out_dir=out), num_shards=2,
                workers=1, show_progress=False)
    first = framestore.ensure(out, "train")
    stamp = os.stat(os.path.join(first.folder, framestore.STORE_JSON)).st_mtime_ns
    assert os.stat(os.path.join(framestore.ensure(out).folder, framestore.STORE_JSON)).st_mtime_ns == stamp
    convert.run(small, convert.Options(features_root=str(root / "features"), out_dir=out, dtype="float16"),
                num_shards=2, workers=1, show_progress=False)
    store = framestore.ensure(out, "train")
    assert store.dtype == np.float16
    tracks = whole_tracks(out, dtype="float16")
    t = int(np.argmax(store.frames))
    np.testing.assert_array_equal(store.crops([t], [3], 16)[0].T, tracks[int(store.track_id[t])][:, 3:19])
    x, _ = next(iter(pipeline.train_dataset(out, batch_size=4, crop_frames=16, seed=0)))
    assert x.dtype == tf.float32 and x.shape == (4, 96, 16, 1)
    store.close()
    with open(os.path.join(store.folder, "frames-00000.bin"), "r+b") as f:  # damage it
        f.truncate(100)
    with pytest.raises(OSError, match="frame store is damaged"):
        framestore.FrameStore(store.folder).crops([0], [int(store.frames[0]) - 16], 16)


def test_fused_augmentation_is_spec_augment_then_mixup():
    """The pipeline's compiled path (`fused_apply` on the draws) gives what the public ops give with the same
    seed: masks bit for bit, mixup's blend up to XLA's fused multiply-add (a couple of ulp)."""
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(-40, 10, (8, 12, 40)).astype(np.float32))
    y = tf.constant(rng.random((8, 5)).astype(np.float32))
    seed = tf.constant([7, 9], tf.int64)
    config = {"probability": 0.7, "max_time_fraction": 0.3, "max_freq_fraction": 0.3}
    masks = augment.spec_augment_masks(8, 12, 40, seed=seed, **config)
    mix = augment.mixup_draws(8, 0.3, seed)
    masked = augment.spec_augment(x, seed=seed, **config)
    assert (masked.numpy() != x.numpy()).any()
    np.testing.assert_array_equal(augment.fused_apply(x, masks, None)[..., 0], masked)
    np.testing.assert_array_equal(augment.apply_batch(x, masks, None)[..., 0], masked)
    mx, my = augment.mixup(masked, y, 0.3, seed)
    np.testing.assert_allclose(augment.fused_apply(x, masks, mix)[..., 0], mx, rtol=0, atol=4 * 2.0 ** -23 * 80)
    np.testing.assert_array_equal(augment.blend(y, *mix), my)
    np.testing.assert_array_equal(augment.fused_apply(x, None, None)[..., 0], x)


def test_compiled_recipe_transforms_equal_their_ops():
    """time_roll's and random_resized_crop's compiled applies: the roll bit for bit, the resize up to the
    rounding of a fused multiply-add."""
    from tfmood.data import recipe_augment

    x = tf.constant(np.random.default_rng(4).normal(-40, 10, (6, 16, 50)).astype(np.float32))
    shift = tf.constant([0, 1, -1, 49, -50, 7])
    rolled = recipe_augment._roll(x, shift).numpy()
    for b in range(6):
        np.testing.assert_array_equal(rolled[b], np.roll(x.numpy()[b], int(shift[b]), axis=1))
    boxes = recipe_augment.crop_boxes(tf.shape(x), tf.constant([5, 6], tf.int64), (0.5, 1.0), (1.7, 2.3))
    apply = tf.constant([True, False, True, True, False, True])
    got = recipe_augment._resize_where(x, boxes, apply).numpy()
    want = recipe_augment.resize_where(x, boxes, apply).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(got[~apply.numpy()], x.numpy()[~apply.numpy()])
    assert not np.array_equal(got[apply.numpy()], x.numpy()[apply.numpy()])
