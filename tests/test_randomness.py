"""Random draws of the training pipeline: fresh per sample and per epoch, with the laws they claim.

Every test builds the pipeline as `tfmood.training.trainer.train` does (`pipeline.train_dataset` with the
run's seed, then `losses.mixed_loss_batches` for CP-JKU), over records made by the project's converter, and
iterates it twice, as Keras `fit` does for two epochs (it re-iterates the dataset at each epoch). The checks
are goodness-of-fit and independence tests at a 1e-3 level on fixed seeds, so they are deterministic.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from tfmood.data import convert, pipeline
from tfmood.training import losses
from tfmood.training.coteaching import CoTeaching

ALPHA = 1e-3
CROP = 32
CODE = 10_000  # ramp records: value = track ordinal * CODE + frame index, so a crop tells where it came from


@pytest.fixture(scope="module")
def ramp_records(tiny_source, tmp_path_factory):
    """The tiny train split with features that encode (track, frame), converted by the project's converter.

    Returns (records folder, [(frames, label vector)] by track ordinal).
    """
    _, splits = tiny_source
    root = tmp_path_factory.mktemp("ramp-source")
    tracks = []
    for k, track in enumerate(splits["train"]):
        frames = round(track.duration * 12000 / 256)
        path = track.feature_path(str(root / "features"))
        values = (k * CODE + np.arange(frames, dtype=np.float32))[None].repeat(96, axis=0)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.save(path, values.astype(np.float32))
        tracks.append((frames, track.label_vector()))
    out = tmp_path_factory.mktemp("ramp-records")
    # One shard: tracks arrive in the same order every epoch, so a replayed random stream shows per track.
    convert.run({"train": splits["train"]}, convert.Options(features_root=str(root / "features"), out_dir=str(out)),
                num_shards=1, workers=1, show_progress=False)
    return str(out), tracks


def two_epochs(ds):
    """[(x, y) numpy arrays of the whole epoch] for two iterations of `ds`, as fit() runs two epochs."""
    epochs = []
    for _ in range(2):
        xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
        epochs.append((np.concatenate(xs), np.concatenate(ys)))
    return epochs


def beta_cdf(alpha):
    return lambda t: stats.beta.cdf(t, alpha, alpha)


def randomized_pit(value, low, count, rng):
    """Uniform(0, 1) exactly when `value` is uniform on the integers low..low+count-1 (randomised PIT)."""
    return (value - low + rng.random(np.shape(value))) / count


def test_mixup_lambda_is_beta_and_fresh_per_epoch(tiny_records):
    """Targets mixup (SELAB, AMLAG): with one-hot labels, a mixed row holds lam and 1 - lam."""
    alpha = 0.4
    ds = pipeline.train_dataset(tiny_records, batch_size=16, crop_frames=CROP, crops_per_track=4,
                                spec_augment=False, mixup_alpha=alpha, label_balancing=True, seed=0)
    mins = []
    for _, y in two_epochs(ds):
        nonzero = np.sort(np.where(y > 0, y, 2.0), axis=1)[:, :2]
        mixed = nonzero[:, 1] < 2.0  # two different tags mixed (partner = itself or same tag: no information)
        np.testing.assert_allclose(nonzero[mixed].sum(axis=1), 1.0, atol=1e-5)
        mins.append(nonzero[mixed, 0])
    assert min(len(m) for m in mins) > 150
    # min(lam, 1 - lam) of a symmetric Beta has CDF 2 F(t) on [0, 1/2]
    for m in mins:
        assert stats.kstest(m, lambda t: np.minimum(2 * beta_cdf(alpha)(t), 1.0)).pvalue > ALPHA
    assert stats.ks_2samp(*mins).pvalue > ALPHA and not np.array_equal(mins[0][:50], mins[1][:50])


def test_cpjku_mixed_loss_lambda_is_max_of_beta(tiny_records):
    """CP-JKU's mixed-loss mixup as the trainer chains it: lam = max(l, 1 - l), l ~ Beta(alpha, alpha)."""
    alpha = 0.3
    ds = pipeline.train_dataset(tiny_records, batch_size=16, crop_frames=CROP, crops_per_track=4,
                                spec_augment=False, seed=0)
    ds = losses.mixed_loss_batches(ds, alpha, seed=0)
    lams = [y[:, -1] for _, y in two_epochs(ds)]
    for lam in lams:
        assert len(lam) >= 256 and (lam >= 0.5).all()
        assert stats.kstest(lam, lambda t: np.clip(2 * beta_cdf(alpha)(t) - 1, 0, 1)).pvalue > ALPHA
    assert not np.allclose(lams[0], lams[1])


def mask_geometry(x):
    """Per example: (freq width, freq start, time width, time start) of its single band and frame mask."""
    rows = []
    for example in x[..., 0]:
        filled = example == example.min()
        bands, frames = np.flatnonzero(filled.all(axis=1)), np.flatnonzero(filled.all(axis=0))
        for idx in (bands, frames):  # one mask per family: the masked indices are contiguous
            assert len(idx) == 0 or idx[-1] - idx[0] + 1 == len(idx)
        rows.append((len(bands), bands[0] if len(bands) else -1, len(frames), frames[0] if len(frames) else -1))
    return np.array(rows)


def test_spec_augment_masks_follow_uniform_laws_independently(tiny_records):
    config = {"probability": 1.0, "freq_masks": 1, "time_masks": 1}
    ds = pipeline.train_dataset(tiny_records, batch_size=16, crop_frames=CROP, crops_per_track=4,
                                spec_augment=config, seed=0)
    rng = np.random.default_rng(0)
    max_f, max_t = int(96 * 0.1), int(CROP * 0.15)  # the default max fractions
    epochs = [mask_geometry(x) for x, _ in two_epochs(ds)]
    for geo in epochs:
        fw, fs, tw, ts = geo.T
        # widths ~ U{0..max}
        for width, top in ((fw, max_f), (tw, max_t)):
            counts = np.bincount(width, minlength=top + 1)
            assert len(counts) == top + 1 and stats.chisquare(counts).pvalue > ALPHA
        # starts ~ U{0..size - width} given the width
        pit_f = randomized_pit(fs[fw > 0], 0, 96 - fw[fw > 0] + 1, rng)
        pit_t = randomized_pit(ts[tw > 0], 0, CROP - tw[tw > 0] + 1, rng)
        assert stats.kstest(pit_f, "uniform").pvalue > ALPHA and stats.kstest(pit_t, "uniform").pvalue > ALPHA
        # independent families, and start independent of width (one shared stream correlates them)
        both = (fw > 0) & (tw > 0)
        assert stats.pearsonr(fw, tw).pvalue > ALPHA
        assert stats.pearsonr(fs[both] / (96 - fw[both] + 1), ts[both] / (CROP - tw[both] + 1)).pvalue > ALPHA
        assert stats.pearsonr(fw[fw > 0], pit_f).pvalue > ALPHA
    assert not np.array_equal(epochs[0], epochs[1])


def crop_origin(x):
    """(track ordinal, start frame) of each ramp crop, after checking it is a contiguous window."""
    first = x[:, 0, :, 0]
    np.testing.assert_array_equal(first - first[:, :1], np.arange(CROP)[None].repeat(len(x), 0))
    return (first[:, 0] // CODE).astype(int), (first[:, 0] % CODE).astype(int)


def test_one_crop_per_track_is_uniform_and_fresh_each_epoch(ramp_records):
    """The recipes' sampling (crops_per_track=1): offset ~ U{0..frames - crop}, redrawn every epoch."""
    records, tracks = ramp_records
    ds = pipeline.train_dataset(records, batch_size=8, crop_frames=CROP, crops_per_track=1,
                                spec_augment=False, seed=0)
    rng = np.random.default_rng(1)
    offsets, orders = [], []
    for x, _ in two_epochs(ds):
        k, start = crop_origin(x)
        assert len(set(k)) == len(k)  # each track once per epoch
        room = np.array([tracks[i][0] - CROP + 1 for i in k])
        assert (start < room).all()
        offsets.append(dict(zip(k, start)))
        orders.append(k)
        assert stats.kstest(randomized_pit(start, 0, room, rng), "uniform").pvalue > ALPHA
    common = sorted(set(offsets[0]) & set(offsets[1]))
    same = np.mean([offsets[0][i] == offsets[1][i] for i in common])
    assert same < 0.25  # a replayed stream gives 1.0; independent draws ~ E[1 / room] < 0.1
    # shuffling: a new order each epoch, unrelated to the previous one
    pos = [{t: p for p, t in enumerate(order)} for order in orders]
    assert not np.array_equal(orders[0], orders[1])
    assert stats.spearmanr([pos[0][t] for t in common], [pos[1][t] for t in common]).pvalue > ALPHA


def test_stratified_crops_cover_each_span_and_differ_between_epochs(ramp_records):
    """The default sampling: about one crop per crop_frames of audio, crop j uniform in the j-th span."""
    records, tracks = ramp_records
    ds = pipeline.train_dataset(records, batch_size=8, crop_frames=CROP, spec_augment=False, seed=0,
                                shuffle_buffer=4096)
    rng = np.random.default_rng(2)
    per_epoch = []
    for x, _ in two_epochs(ds):
        k, start = crop_origin(x)
        by_track, pits = {}, []
        for i, s in zip(k, start):
            by_track.setdefault(i, []).append(s)
        for i, starts in by_track.items():
            frames = tracks[i][0]
            count = max(1, (frames + CROP // 2) // CROP)
            if len(starts) < count:  # some crops fell in the dropped last batch
                continue
            span = (frames - CROP + 1) / count
            for j, s in enumerate(sorted(starts)):  # stratified: the j-th smallest start is crop j
                a, b = j * span, (j + 1) * span     # crop j starts at floor(z), z ~ U[a, b)
                assert np.floor(a) <= s <= np.ceil(b) - 1
                lo, hi = max(s, a), min(s + 1, b)    # z given floor(z) = s is uniform on [lo, hi)
                pits.append((lo + rng.random() * (hi - lo) - a) / span)
        assert stats.kstest(pits, "uniform").pvalue > ALPHA
        per_epoch.append(by_track)
    common = set(per_epoch[0]) & set(per_epoch[1])
    assert np.mean([sorted(per_epoch[0][i]) == sorted(per_epoch[1][i]) for i in common]) < 0.25


def test_label_balancing_keeps_each_tracks_rarest_tag_every_epoch(ramp_records):
    records, tracks = ramp_records
    manifest = convert.read_manifest(records)
    counts = np.array([manifest["splits"]["train"]["tag_counts"][t] for t in manifest["tags"]])
    ds = pipeline.train_dataset(records, batch_size=8, crop_frames=CROP, crops_per_track=1,
                                spec_augment=False, label_balancing=True, seed=0)
    for x, y in two_epochs(ds):
        k, _ = crop_origin(x)
        for i, row in zip(k, y):
            tags = np.flatnonzero(tracks[i][1])
            assert np.flatnonzero(row).tolist() == [tags[np.argmin(counts[tags])]]


def test_seeded_runs_repeat_and_epochs_do_not(tiny_records):
    """`--seed N --deterministic`: the same batches run to run; a new epoch draws anew; another seed differs."""
    def first_epochs(seed):
        ds = pipeline.train_dataset(tiny_records, batch_size=16, crop_frames=CROP, mixup_alpha=0.3, seed=seed,
                                    deterministic=True)
        return two_epochs(losses.mixed_loss_batches(ds, 0.3, seed=seed))

    a, b, c = first_epochs(0), first_epochs(0), first_epochs(1)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0], a[1][0]) and not np.array_equal(a[0][0], c[0][0])


def test_coteaching_keeps_the_smallest_losses_not_a_random_stream():
    """Co-teaching's selection is a function of the losses alone: permuting them permutes the kept set."""
    class Pair:
        forget_rate = tf.constant(0.25)

    rng = np.random.default_rng(0)
    for _ in range(5):
        per_sample = rng.random(16).astype(np.float32)
        keep = CoTeaching._keep_smallest(Pair(), tf.constant(per_sample)).numpy()
        np.testing.assert_array_equal(keep, (per_sample <= np.sort(per_sample)[11]).astype(np.float32))
        perm = rng.permutation(16)
        np.testing.assert_array_equal(CoTeaching._keep_smallest(Pair(), tf.constant(per_sample[perm])), keep[perm])
