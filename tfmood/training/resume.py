"""Resuming a killed run: every piece of training state agrees with the last `BackupAndRestore` backup.

`BackupAndRestore` restores the model and optimizer variables and the epoch. Everything else that
spans epochs is written at each epoch end, *before* the backup, tagged with the epoch it describes:

- history.jsonl (validation figures): lines of epochs after the backup (the kill came between them and
  the backup) move to history.rolled-back.jsonl, so each epoch appears once; their best value still
  counts for the checkpoint threshold, because best.keras may come from such an epoch;
- `ResumeState`: counters of ReduceLROnPlateau, EarlyStopping and ModelCheckpoint (resume_state.json);
- SWA's running average (`tfmood.training.swa`).

Versioned files keep the current and the previous version, so a kill between writing the state and
writing the backup falls back to the version that matches the backup.
"""

import json
import os

import keras

METADATA = "training_metadata.json"  # written by keras.callbacks.BackupAndRestore
STATE_FILE = "resume_state.json"
ROLLED_BACK = "history.rolled-back.jsonl"
CALLBACK_FIELDS = {  # what each callback keeps between epochs (Keras resets it in on_train_begin)
    keras.callbacks.ReduceLROnPlateau: ("wait", "best", "cooldown_counter"),
    keras.callbacks.EarlyStopping: ("wait", "best", "best_epoch"),
    keras.callbacks.ModelCheckpoint: ("best",),
}


def completed_epochs(backup_dir: str) -> int:
    """Epochs finished according to the backup (0 when there is none: a fresh start)."""
    path = os.path.join(backup_dir, METADATA)
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return int(json.load(f)["epoch"])


def save_versioned(path: str, epoch: int, write) -> None:
    """Atomically replace `path` (keeping the old version as `path.prev`); `write(file)` writes the content,
    which must record `epoch`. A kill at any point leaves a readable version <= every later backup."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        write(f)
    if os.path.exists(path):
        os.replace(path, f"{path}.prev")
    os.replace(tmp, path)


def load_versioned(path: str, max_epoch: int, read, epoch_of):
    """`read(file)` of the newest version whose `epoch_of(file)` <= `max_epoch`, else None."""
    for candidate in (path, f"{path}.prev"):
        if os.path.exists(candidate) and epoch_of(candidate) <= max_epoch:
            return read(candidate)
    return None


def _read_history(path: str) -> list:
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a kill
    return rows


def prepare_history(history_path: str, completed: int) -> None:
    """Move history lines the backup does not cover to history.rolled-back.jsonl (atomic rewrite).

    On a fresh start (`completed` 0) the whole old history is from an earlier run: it is kept as
    history.previous.jsonl and the rolled-back file is cleared.
    """
    folder = os.path.dirname(history_path)
    rolled_back = os.path.join(folder, ROLLED_BACK)
    if completed == 0:
        if os.path.exists(history_path):
            os.replace(history_path, os.path.join(folder, "history.previous.jsonl"))
        if os.path.exists(rolled_back):
            os.remove(rolled_back)
        return
    rows = _read_history(history_path)
    kept = [r for r in rows if r.get("epoch", 0) <= completed]
    dropped = [r for r in rows if r.get("epoch", 0) > completed]
    if dropped:
        with open(rolled_back, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in dropped)
    with open(f"{history_path}.tmp", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)
    os.replace(f"{history_path}.tmp", history_path)


def best_so_far(history_path: str, monitor: str, mode: str = "max"):
    """Best `monitor` value of the run so far (`mode` "max" or "min"), rolled-back epochs included (None on a
    fresh history)."""
    rolled_back = os.path.join(os.path.dirname(history_path), ROLLED_BACK)
    values = [r[monitor] for path in (history_path, rolled_back) for r in _read_history(path) if monitor in r]
    return (max if mode == "max" else min)(values) if values else None


class ResumeState(keras.callbacks.Callback):
    """Saves the counters of `callbacks` at each epoch end and restores them when a run resumes.

    Place it after those callbacks and before `BackupAndRestore`.
    """

    def __init__(self, run_dir: str, callbacks):
        super().__init__()
        self.path = os.path.join(run_dir, STATE_FILE)
        self.callbacks = [c for c in callbacks if type(c) in CALLBACK_FIELDS]
        self._restored = False

    def _key(self, i, callback):
        return f"{i}:{type(callback).__name__}"

    def on_epoch_begin(self, epoch, logs=None):
        if self._restored:
            return
        self._restored = True  # the first epoch of this process: `epoch` = epochs the backup completed
        state = load_versioned(self.path, epoch, _read_json, lambda p: _read_json(p)["epoch"])
        for i, callback in enumerate(self.callbacks):
            saved = (state or {}).get("callbacks", {}).get(self._key(i, callback), {})
            for field, value in saved.items():
                if field == "best" and isinstance(callback, keras.callbacks.ModelCheckpoint):
                    # the threshold from the history may know a rolled-back best.keras
                    better = min if getattr(callback, "mode", "max") == "min" else max
                    value = better(v for v in (value, callback.best) if v is not None) if value is not None \
                        else callback.best
                setattr(callback, field, value)

    def on_epoch_end(self, epoch, logs=None):
        state = {"epoch": epoch + 1, "callbacks": {
            self._key(i, c): {f: _plain(getattr(c, f)) for f in CALLBACK_FIELDS[type(c)] if hasattr(c, f)}
            for i, c in enumerate(self.callbacks)}}
        save_versioned(self.path, epoch + 1, lambda f: f.write(json.dumps(state).encode()))


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _plain(value):
    return float(value) if hasattr(value, "__float__") and not isinstance(value, int) else value


def attach(callbacks: list, run_dir: str) -> list:
    """`callbacks` with a `ResumeState` for their counters inserted right before `BackupAndRestore`."""
    at = next((i for i, c in enumerate(callbacks) if isinstance(c, keras.callbacks.BackupAndRestore)),
              len(callbacks))
    return callbacks[:at] + [ResumeState(run_dir, callbacks[:at])] + callbacks[at:]
