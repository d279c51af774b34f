"""A script that ends while a training iterator is alive and reading exits, rather than hanging.

CPython ends any other thread that takes the GIL once the interpreter is finalizing. A crop read in flight at
exit (the training pipeline reads in a `numpy_function`, which lets go of the GIL in `preadv`) then never
returns, and the iterator's destructor, run when the finalizing interpreter clears what holds the iterator,
waits for it forever. Each script here makes sure a read is in flight when it ends: the store's reader is
wrapped to sleep after its read (a slow disk), and the script ends once a read has begun. Without the fix
(`framestore._end_live_iterators`) every run hangs, so one run per case fails reliably.
"""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import sys, threading, time
    import tensorflow as tf

    records, augment_on, ending = sys.argv[1:]
    if ending == "distributed":  # two replicas on two logical CPUs
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfmood.data import framestore, pipeline

    reading = threading.Event()
    read = framestore.FrameStore.crops

    def slow_read(self, *args):
        out = read(self, *args)
        reading.set()
        time.sleep(1.0)  # outside the GIL, as a pread from a slow disk
        return out

    def start():
        ds = pipeline.train_dataset(records, batch_size=8, crop_frames=32, seed=0, mixup_alpha=0.3,
                                    augment_on=augment_on).repeat()
        if ending == "distributed":  # tf.distribute's multi-device iterator
            ds = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).experimental_distribute_dataset(ds)
        it = iter(ds)
        next(it)
        reading.clear()
        reading.wait()  # the pipeline refills its buffers: a read is in flight now
        print("ending", flush=True)
        return it

    framestore.FrameStore.crops = slow_read
    if ending in ("module", "distributed"):
        it = start()  # alive until the interpreter clears this module
    else:
        def train():
            it = start()
            raise RuntimeError("a training step failed")  # the traceback keeps the frame, and `it`, alive
        train()
""")


@pytest.mark.parametrize("augment_on, ending, returncode", [
    ("pipeline", "module", 0),
    pytest.param("device", "module", 0, marks=pytest.mark.slow),  # a TensorFlow start-up each
    pytest.param("pipeline", "raise", 1, marks=pytest.mark.slow),
    pytest.param("pipeline", "distributed", 0, marks=pytest.mark.slow),
])
def test_script_ends_with_a_live_reading_iterator(tiny_records, tmp_path, augment_on, ending, returncode):
    script = tmp_path / "ends_with_live_iterator.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    try:
        done = subprocess.run([sys.executable, str(script), tiny_records, augment_on, ending], env=env,
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("The script did not end within 120 s: the interpreter hangs at exit, destroying an "
                    "iterator whose read never returns.")
    assert "ending" in done.stdout, done.stderr[-3000:]
    assert done.returncode == returncode, done.stderr[-3000:]
