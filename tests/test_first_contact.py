"""What a new user sees first: no TensorFlow start-up noise, and one sentence (not a traceback) for bad input.

Every check runs the command the way a user does, in a subprocess; they run concurrently (each imports TF).
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tfmood import _quiet

REPO = Path(__file__).resolve().parents[1]
NOISE = ("cuInit", "E0000", "oneDNN custom operations", "absl::InitializeLog", "cudart_stub",
         "cpu_feature_guard", "To enable the following instructions")


def start(args, cwd, **env):
    environment = {k: v for k, v in os.environ.items() if k not in ("TFMOOD_TRACEBACK", _quiet.SHOW_ALL_ENV)}
    environment.update(env)
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=environment, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process):
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, stdout, stderr


def run_all(commands, cwd, env_for=lambda name: {}):
    """Start every command at once; return {name: (returncode, stdout, stderr)}."""
    processes = {name: start(args, cwd, **env_for(name)) for name, args in commands.items()}
    return {name: finish(process) for name, process in processes.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The quick commands (two import TensorFlow, the others fail before they need it)."""
    tmp = tmp_path_factory.mktemp("first_contact")
    (tmp / "bad.config").write_text("model_config_list { config { nme: 'x' } }\n")
    (tmp / "user_script.py").write_text("import tfmood\nraise ValueError('a bug in the user script')\n")
    device_use = textwrap.dedent("""
        import os, tfmood, tensorflow as tf
        print(float(tf.constant(2.0) * 3), os.environ.get("CUDA_VISIBLE_DEVICES"))
        tf.raw_ops.MatMul(a=tf.zeros([2, 3]), b=tf.zeros([2, 3]))   # a genuine error must still show
    """)
    window = textwrap.dedent("""
        import os, sys
        from tfmood import _quiet
        with _quiet._FilteredStderr():
            os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
            os.write(2, b"I0000 00:00:1796168967.250081    7445 port.cc:153] oneDNN custom operations are on. x\\n")
            os.write(2, b"E0000 00:00:1796168967.250081    7445 some_kernel.cc:12] Real failure: disk on fire\\n")
            print("a Python warning during the import", file=sys.stderr)
        print("after the window", file=sys.stderr)
    """)
    background = textwrap.dedent("""
        import sys, threading, time
        import tfmood
        threading.Thread(target=lambda: __import__("tensorflow"), daemon=True).start()  # as tfmood.predict does
        time.sleep(0.5)  # the import is under way, fd 2 is captured
        print("main thread message", file=sys.stderr)
        raise RuntimeError("main thread failed while TensorFlow was importing")
    """)
    # The first training step's metrics (tfmood.training.trainer) transpose int32 and bool tensors, which
    # made TensorFlow print "oneDNN supports DT_INT32 only on platforms with AVX-512"; tf.config must still
    # be settable afterwards (the window may not start TensorFlow's runtime).
    training_metric = textwrap.dedent("""
        import tfmood, keras, tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(2)
        auc = keras.metrics.AUC(curve="PR", multi_label=True)
        labels, scores = tf.constant([[1.0, 0.0], [0.0, 1.0]]), tf.constant([[0.8, 0.3], [0.4, 0.6]])
        tf.function(auc.update_state)(labels, scores)
        auc.update_state(labels, scores)
        print(round(float(auc.result()), 3))
    """)
    missing = tmp / "missing"
    commands = {
        "background_import": ["-c", background],
        "training_metric": ["-c", training_metric],
        "list_models": ["-m", "tfmood.train", "--list-models"],
        "device_use": ["-c", device_use],
        "window": ["-c", window],
        "serve_missing_config": ["-m", "tfmood.serve", "--model-config-file", str(missing / "models.config")],
        "serve_bad_config": ["-m", "tfmood.serve", "--model-config-file", str(tmp / "bad.config")],
        "serve_bad_flag": ["-m", "tfmood.serve", "--model-base-path", str(tmp), "--max-connections", "0"],
        "ensemble_missing_run": ["-m", "tfmood.ensemble", "--run", str(missing), "--out", str(tmp / "ens")],
        "user_script": [str(tmp / "user_script.py")],
        "traceback_on_request": ["-m", "tfmood.ensemble", "--run", str(missing), "--out", str(tmp / "ens")],
    }
    return run_all(commands, tmp, lambda name: {"TFMOOD_TRACEBACK": "1"} if name == "traceback_on_request" else {})


@pytest.fixture(scope="module")
def slow_runs(tmp_path_factory):
    """Commands that import TensorFlow before they find the bad path."""
    tmp = tmp_path_factory.mktemp("first_contact_tf")
    missing = tmp / "missing"
    return run_all({
        "export_missing_model": ["-m", "tfmood.export", "--model", str(missing / "m.keras"), "--name", "t",
                                 "--out", str(tmp / "saved")],
        "train_missing_data": ["-m", "tfmood.train", "--data", str(missing), "--epochs", "1",
                               "--out", str(tmp / "runs")],
    }, tmp)


def assert_quiet(stderr):
    found = [line for line in stderr.splitlines() if any(word in line for word in NOISE)]
    assert not found, found


# === TensorFlow start-up noise ===

def test_list_models_prints_no_start_up_noise(runs):
    code, stdout, stderr = runs["list_models"]
    assert code == 0 and "mobilenetv2" in stdout
    assert_quiet(stderr)


def test_device_use_is_quiet_and_real_errors_show(runs):
    code, stdout, stderr = runs["device_use"]
    assert stdout.split() == ["6.0", "None"]  # ran on a device; tfmood did not hide any GPU
    assert_quiet(stderr)
    assert code == 1 and "Matrix size-incompatible" in stderr and "Traceback" in stderr


def test_first_training_step_prints_no_onednn_dtype_notice(runs):
    code, stdout, stderr = runs["training_metric"]
    assert code == 0 and stdout.split() == ["1.0"], stderr
    assert_quiet(stderr)


def test_onednn_dtype_notice_is_dropped_and_other_util_errors_kept():
    notice = ("E0000 00:00:1796180839.317997   25580 util.cc:131] oneDNN supports DT_INT32 only on platforms "
              "with AVX-512. Falling back to the default Eigen-based implementation if present.\n")
    other = "W0000 00:00:1796180839.317997   25580 util.cc:159] Not handling type DT_INT32\n"
    assert _quiet.filter_lines(notice + other, has_driver=False) == other


def test_the_window_keeps_unknown_lines(runs):
    code, _, stderr = runs["window"]
    assert code == 0
    assert stderr.splitlines() == [
        "E0000 00:00:1796168967.250081    7445 some_kernel.cc:12] Real failure: disk on fire",
        "a Python warning during the import", "after the window"]


def test_exit_during_a_background_import_loses_nothing(runs):
    code, _, stderr = runs["background_import"]
    assert code == 1 and "main thread message" in stderr
    assert "RuntimeError: main thread failed while TensorFlow was importing" in stderr


def test_cuinit_failure_is_kept_when_a_driver_exists():
    line = ("E0000 00:00:1796168988.293928    7790 cuda_platform.cc:52] failed call to cuInit: INTERNAL: "
            "CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n")
    noise = ("I0000 00:00:1796168986.115107    7790 cudart_stub.cc:31] Could not find cuda drivers on your "
             "machine, GPU will not be used.\n")
    assert _quiet.filter_lines(noise + line, has_driver=False) == ""
    assert _quiet.filter_lines(noise + line, has_driver=True) == line
    warning = "W0000 00:00:1796168986.115107    7790 op_kernel.cc:1857] OP_REQUIRES failed at matmul\n"
    assert _quiet.filter_lines(warning, has_driver=False) == warning


# === Bad input: one sentence and exit 1 (usage errors: argparse's exit 2) ===

def check_one_sentence(result, code, words):
    received, _, stderr = result
    assert received == code, stderr[-2000:]
    assert "Traceback" not in stderr
    assert_quiet(stderr)
    last = stderr.strip().splitlines()[-1]
    assert all(word in last for word in words), last
    if code == 1:
        assert len(stderr.strip().splitlines()) == 1, stderr


@pytest.mark.parametrize("name, code, words", [
    ("serve_missing_config", 1, ["python -m tfmood.serve: error:", "missing/models.config"]),
    ("serve_bad_config", 1, ["python -m tfmood.serve: error:", "bad.config", 'no field named "nme"']),
    ("serve_bad_flag", 2, ["--max-connections: must be > 0"]),
    ("ensemble_missing_run", 1, ["python -m tfmood.ensemble: error:", "missing"]),
])
def test_bad_input_is_one_sentence(runs, name, code, words):
    check_one_sentence(runs[name], code, words)


@pytest.mark.slow
@pytest.mark.parametrize("name, words", [
    ("export_missing_model", ["python -m tfmood.export: error:", "missing/m.keras"]),
    ("train_missing_data", ["python -m tfmood.train: error:", "missing"]),
])
def test_bad_paths_after_tensorflow_is_imported(slow_runs, name, words):
    check_one_sentence(slow_runs[name], 1, words)


def test_other_programs_keep_their_tracebacks(runs):
    code, _, stderr = runs["user_script"]
    assert code == 1 and "Traceback" in stderr and "a bug in the user script" in stderr
    code, _, stderr = runs["traceback_on_request"]
    assert code == 1 and "Traceback" in stderr
