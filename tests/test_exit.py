"""A script that exits while a training iterator is alive (and reading) exits, rather than hanging.

CPython ends any thread that takes the GIL once the interpreter is finalizing. A read in flight at exit (the
training pipeline reads crops in a `numpy_function`, which lets go of the GIL in `pread`) then never
returns, and destroying the iterator during finalization waits for it forever. Each script here makes sure a
read is in flight when it ends: the store's reader is wrapped to sleep after its read (a slow disk), and the
script ends once a read has begun. Without the fix every run hangs, so one run per mode fails reliably.
"""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import sys, threading, time
    from tfmood.data import framestore, pipeline

    records, augment_on = sys.argv[1:]
    reading = threading.Event()
    read = framestore.FrameStore.crops

    def slow_read(self, *args):
        out = read(self, *args)
        reading.set()
        time.sleep(1.0)  # outside the GIL, as a pread from a slow disk
        return out

    framestore.FrameStore.crops = slow_read
    ds = pipeline.train_dataset(records, batch_size=8, crop_frames=32, seed=0, mixup_alpha=0.3,
                                augment_on=augment_on).repeat()
    it = iter(ds)  # alive until the interpreter clears this module
    next(it)
    reading.clear()
    reading.wait()  # the pipeline refills its buffers: a read is in flight now
    print("ending", flush=True)
""")


@pytest.mark.parametrize("augment_on", ["pipeline", "device"])
def test_script_ends_with_a_live_reading_iterator(tiny_records, augment_on, tmp_path):
    script = tmp_path / "ends_with_live_iterator.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    try:
        done = subprocess.run([sys.executable, str(script), tiny_records, augment_on], env=env,
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("The script did not end within 120 s: the interpreter hangs at exit, destroying an "
                    "iterator whose read never returns.")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ending" in done.stdout
