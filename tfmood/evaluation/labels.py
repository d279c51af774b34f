"""Ground truth from either source: an `.npy` bool matrix (MTG's `groundtruth.npy`) or a split TSV."""

import numpy as np

from tfmood import metadata


def load_labels(path: str) -> tuple:
    """Return `(labels bool [n, 56], track_ids int64 [n] or None)`; a `.npy` file carries no track ids."""
    if path.endswith(".npy"):
        return np.load(path).astype(bool), None
    tracks = metadata.read_split(path)
    if not tracks:
        raise ValueError(f"{path}: the split file lists no track.")
    return metadata.label_matrix(tracks), np.array([t.track_id for t in tracks], dtype=np.int64)


def reorder_rows(track_ids, wanted_ids, *matrices) -> tuple:
    """Rows of each matrix put in `wanted_ids` order (e.g. the test TSV's). Both id sets must be equal."""
    track_ids, wanted_ids = np.asarray(track_ids), np.asarray(wanted_ids)
    position = {int(t): i for i, t in enumerate(track_ids)}
    if len(position) != len(track_ids):
        raise ValueError(f"{len(track_ids) - len(position)} duplicated track id(s) among the scored tracks.")
    missing = [int(t) for t in wanted_ids if int(t) not in position]
    extra = sorted(set(position) - {int(t) for t in wanted_ids})
    if missing or extra:
        raise ValueError(f"scored tracks and the split file differ: {len(missing)} missing from the scores "
                         f"(e.g. {missing[:5]}), {len(extra)} not in the split file (e.g. {extra[:5]}). "
                         f"Use the records converted from this split file.")
    index = np.array([position[int(t)] for t in wanted_ids], dtype=np.int64)
    return tuple(np.asarray(m)[index] for m in matrices)
