"""Stop a multi-worker process that TensorFlow blocks in C++: on SIGTERM/SIGINT, and at a deadline.

While TensorFlow waits for a peer (at cluster start-up, `context.ensure_initialized`), it holds the GIL:
no Python signal handler and no Python thread runs until it returns, and TF's coordination service installs
a SIGTERM handler of its own that only records the signal (for preemption checkpointing, which tfmood does
not use). Hence:

- `stop_on_signals`: SIGTERM and SIGINT get the operating system's default action again (the process ends
  at once, exit status -15 / -2 to its parent, whatever the main thread is doing);
- `deadline`: a tiny watcher *process* (no TensorFlow, no GIL shared) prints the reason and kills this one
  when the block has not finished in time.
"""

import contextlib
import os
import signal
import subprocess
import sys


def stop_on_signals() -> None:
    """SIGTERM and SIGINT end the process even while TF blocks the main thread.

    Call it again after anything that installs its own handlers (TF's coordination service does at start-up).
    """
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)


_WATCHER = """
import os, select, signal, sys
pid, seconds, what = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
if not select.select([0], [], [], seconds)[0]:  # stdin closes when the block ends or the watched process dies
    print(f"\\nerror: {what}; stopping after {seconds:.0f} s.", file=sys.stderr, flush=True)
    os.kill(pid, signal.SIGKILL)
"""


@contextlib.contextmanager
def deadline(seconds: float, what: str):
    """Kill this process, after printing `error: {what}`, if the block has not finished after `seconds`."""
    read, write = os.pipe()
    watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, str(os.getpid()), str(seconds), what],
                               stdin=read, start_new_session=True)  # its own session: a Ctrl-C is for us
    os.close(read)
    try:
        yield
    finally:
        os.close(write)
        watcher.wait()
