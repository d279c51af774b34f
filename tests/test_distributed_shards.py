"""Several workers' training input (`pipeline.worker_datasets`), in one process: each worker's rows of every
global batch equal the one-process batch's rows, the shares make up the global batch, and each worker reads
only its rows' crops (and, with mixup, their partners')."""

import numpy as np
import pytest

from tfmood.data import framestore, pipeline

ARGS = dict(batch_size=8, crop_frames=16, seed=5, deterministic=True)  # batches in plan order
AUGMENTED = dict(spec_augment=True, crop_transforms=[{"name": "time_roll", "max_shift": 3}])


def epoch(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


@pytest.fixture
def reads(monkeypatch):
    """Number of crops each `FrameStore.crops` call read, in call order."""
    counts = []
    original = framestore.FrameStore.crops

    def crops(self, tracks, starts, crop_frames):
        counts.append(len(tracks))
        return original(self, tracks, starts, crop_frames)
    monkeypatch.setattr(framestore.FrameStore, "crops", crops)
    return counts


@pytest.mark.parametrize("workers,mixup", [(2, 0.0), (2, 0.4), (4, 0.4)])
def test_worker_shares_make_up_the_one_process_batches(tiny_records, reads, workers, mixup):
    whole = epoch(pipeline.train_dataset(tiny_records, **ARGS, **AUGMENTED, mixup_alpha=mixup))
    assert len(whole) >= 4 and sum(reads) == len(whole) * 8
    share = 8 // workers
    for index in range(workers):
        del reads[:]
        mine = epoch(pipeline.train_dataset(tiny_records, **ARGS, **AUGMENTED, mixup_alpha=mixup,
                                            worker=(index, workers)))
        assert len(mine) == len(whole)
        for (x, y), (gx, gy) in zip(mine, whole):
            rows = slice(index * share, (index + 1) * share)
            np.testing.assert_array_equal(x, gx[rows])  # bit-equal: same crops, same draws
            np.testing.assert_array_equal(y, gy[rows])
        if mixup:  # its rows and their partners: more than its share (partners elsewhere), at most twice it
            assert all(share <= n <= 2 * share for n in reads) and sum(reads) > len(whole) * share, reads
        else:
            assert reads == [share] * len(whole)


def test_a_pass_over_either_dataset_advances_both(tiny_records):
    """SWA's BN pass iterates `whole` between training epochs: the next epoch of `share` must move on too,
    as it does when one dataset serves both in a one-process run."""
    single = pipeline.train_dataset(tiny_records, **ARGS)
    expected = [epoch(single)[0][0] for _ in range(3)]
    share, whole = pipeline.worker_datasets(tiny_records, **ARGS, worker=(1, 2))
    got = [epoch(share)[0][0], epoch(whole)[0][0], epoch(share)[0][0]]
    np.testing.assert_array_equal(got[0], expected[0][4:])
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_array_equal(got[2], expected[2][4:])
    assert not np.array_equal(got[0], got[2])  # epochs differ: not vacuous


def test_worker_rows_are_its_own_and_their_partners():
    from tfmood.data import augment

    seed = np.array([3, 4], np.int64)
    assert pipeline.worker_rows(8, (1, 2)).numpy().tolist() == [4, 5, 6, 7]
    partners = augment.permutation(8, seed).numpy()
    rows = pipeline.worker_rows(8, (1, 2), seed).numpy()
    assert rows.tolist() == sorted({4, 5, 6, 7} | set(partners[4:].tolist()))


@pytest.mark.parametrize("change,message", [(dict(batch_size=6, worker=(0, 4)), "multiple of the number of workers"),
                                            (dict(seed=None, worker=(0, 2)), "needs a seed")])
def test_unshareable_settings_are_refused(tiny_records, change, message):
    with pytest.raises(ValueError, match=message):
        pipeline.train_dataset(tiny_records, **{**ARGS, **change})
