"""Tag audio files with an exported tfmood SavedModel (default: MTG's published VGG-ish baseline).

    python -m tfmood.predict song.mp3 music/ [--model saved_models/mtg-vggish] [--version 2] [--top 5] [--json]

Each file (directories are walked for mp3/ogg/flac/wav) is decoded to 12 kHz mono (tfmood.audio, MTG's
resampling) and scored by the model's `serve_waveform` signature: MTG's log-mel frontend and the model's
own scoring protocol (tfmood.protocol, recorded in the export), exactly what TF Serving would answer for
the same samples. Models without `serve_waveform` get the numpy log-mel through `serving_default`.
Without `--model`, MTG's VGG-ish baseline (Apache-2.0) is downloaded on first use, checked against its
SHA-256 and cached (tfmood.pretrained; `TFMOOD_CACHE` moves the cache).
Text output: one line per file with the top tags. `--json`: one JSON object per line and file with all 56
scores, and per-tag decisions (score > threshold) when the export ships assets/thresholds.tsv.
Unreadable files are reported on stderr and skipped; the exit status is 1 if any file failed.
"""

import argparse
import gc
import importlib.abc
import json
import os
import sys
import threading

import numpy as np

from tfmood.exported import read_info, version_dir  # noqa: F401  (version_dir: public here too)

MEL_SIGNATURE = "serving_default"
WAVEFORM_SIGNATURE = "serve_waveform"
SAMPLE_RATE = 12000


class Tagger:
    """A loaded SavedModel. `waveform_scores(samples)` / `scores(mel)`: the 56 tag scores of one clip
    under the model's own scoring protocol (applied inside the signatures)."""

    def __init__(self, path, info=None):
        with KerasRefused():
            import tensorflow as tf

        self.path = path
        info = read_info(path) if info is None else info
        if info["protocol"] is None:
            raise ValueError(f"{path} was exported by an older tfmood whose serving_default scored the whole "
                             "input; re-export it (python -m tfmood.export) to give it its scoring protocol.")
        self.tags, self.thresholds, self.protocol = info["tags"], info["thresholds"], info["protocol"]
        self._loaded = tf.saved_model.load(str(path))
        signatures = self._loaded.signatures
        if MEL_SIGNATURE not in signatures:
            raise ValueError(f"{path} has no {MEL_SIGNATURE!r} signature; found {list(signatures)}.")
        self._mel = signatures[MEL_SIGNATURE]
        self._waveform = signatures.get(WAVEFORM_SIGNATURE)

    @property
    def takes_waveforms(self) -> bool:
        return self._waveform is not None

    def scores(self, mel) -> np.ndarray:
        """Scores of one (bands, frames) log-mel."""
        return np.asarray(self._mel(mel=np.asarray(mel, np.float32)[None])["scores"])[0]

    def waveform_scores(self, waveform) -> np.ndarray:
        """Scores of one 1-D 12 kHz waveform."""
        return np.asarray(self._waveform(waveform=np.asarray(waveform, np.float32)[None])["scores"])[0]


class KerasRefused(importlib.abc.MetaPathFinder):
    """`with KerasRefused(): import tensorflow`: TensorFlow without the Keras it would import.

    TensorFlow's `__init__` imports `keras.src.optimizers` eagerly (so that SavedModels holding Keras
    optimizers find them registered) and ignores an ImportError there. That pulls in all of Keras 3 and, through
    `keras.wrappers`, scikit-learn: ~1.4 CPU s, a quarter of a one-file `predict`, for nothing: a tfmood
    export's signatures are plain TensorFlow graphs (tf.saved_model.load revives them without Keras).
    Inside the block, and only in the thread that entered it, executing the `keras` package raises ImportError;
    `find_spec` still answers (TensorFlow reads keras' folder from the spec), and once the block is left a
    later `import keras` (or `tf.keras`) imports it normally. No effect when tensorflow or keras is imported.
    """

    def __enter__(self):
        self._thread = threading.get_ident()
        sys.meta_path.insert(0, self)
        return self

    def __exit__(self, *exc):
        sys.meta_path.remove(self)
        return False

    def find_spec(self, name, path=None, target=None):
        if name != "keras" or threading.get_ident() != self._thread:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                spec.loader = _RefusingLoader()
                return spec
        return None


class _RefusingLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise ImportError("tfmood.predict imports TensorFlow without keras (see tfmood.predict.KerasRefused)")


class BackgroundTagger:
    """Import TensorFlow and load the model in a thread while the first file decodes: TensorFlow's import
    is most of a one-file run's time, decoding need not wait for it.

    `pause_gc`: keep Python's cyclic garbage collector off until the model is loaded, then freeze what
    exists and turn it back on. Start-up creates ~0.5 M tracked objects (TensorFlow's modules, the revived
    graph functions), mostly long-lived; the ~800 collections it triggers cost ~0.8 CPU s of a one-file run
    (BENCHMARKS.md), and what they would free is ~2 MB of a ~1.35 GB peak (measured with MTG's VGG-ish).
    Frozen, the start-up objects are not rescanned by later collections either.
    """

    def __init__(self, path, info, pause_gc=False):
        self._result = {}
        self._resume_gc = pause_gc and gc.isenabled()
        if self._resume_gc:
            gc.disable()
        self._thread = threading.Thread(target=self._load, args=(path, info), daemon=True)
        self._thread.start()

    def _load(self, path, info):
        try:
            self._result["tagger"] = Tagger(path, info)
        except BaseException as error:  # re-raised in the main thread by get()
            self._result["error"] = error

    def get(self) -> Tagger:
        self._thread.join()
        self.resume_gc()
        if "error" in self._result:
            raise self._result["error"]
        return self._result["tagger"]

    def resume_gc(self):
        """Undo `pause_gc` (once; called by get(), and by main() whatever happens)."""
        if self._resume_gc:
            self._resume_gc = False
            gc.freeze()
            gc.enable()


def result_record(path, scores, tags, thresholds=None) -> dict:
    """The JSON object for one file: every score, and decisions (score > threshold) when thresholds exist."""
    record = {"file": str(path), "scores": {t: round(float(s), 6) for t, s in zip(tags, scores)}}
    if thresholds is not None:
        record["decisions"] = [t for t, s, th in zip(tags, scores, thresholds) if s > th]
    return record


def top_line(path, scores, tags, top=5) -> str:
    order = np.argsort(-scores, kind="stable")[:top]
    return f"{path}\t" + "  ".join(f"{tags[i]} {scores[i]:.3f}" for i in order)


def file_scores(tagger, path) -> np.ndarray:
    """One file's scores: its samples through `serve_waveform`, else its numpy log-mel through `serving_default`."""
    if tagger.takes_waveforms:
        from tfmood.audio import load_audio

        return tagger.waveform_scores(load_audio(path, sample_rate=SAMPLE_RATE, resampler="mtg"))
    from tfmood.frontend import audio_to_mel

    return tagger.scores(audio_to_mel(path))


def predict_files(tagger, files, top=5, as_json=False, out=None, err=None) -> int:
    """Score every file, print one line each to `out` (errors to `err`); return the number of failures.

    `tagger`: a Tagger or a BackgroundTagger (the first file is decoded while it loads).
    """
    from tfmood.audio import AudioError, load_audio

    out, err = out or sys.stdout, err or sys.stderr
    failed = 0
    progress = None
    if len(files) > 1:
        from tqdm import tqdm

        progress = tqdm(total=len(files), desc="tagging", unit="file", file=err)
    write = (lambda line, file: progress.write(line, file=file)) if progress else \
        (lambda line, file: print(line, file=file, flush=True))
    for index, path in enumerate(files):
        try:
            if isinstance(tagger, BackgroundTagger):
                # Decode the first file now; keep its samples if the model turns out to take waveforms.
                samples = load_audio(path, sample_rate=SAMPLE_RATE, resampler="mtg")
                tagger = tagger.get()
                scores = tagger.waveform_scores(samples) if tagger.takes_waveforms else file_scores(tagger, path)
            else:
                scores = file_scores(tagger, path)
        except AudioError as error:
            write(f"error: {error}", err)
            failed += 1
        else:
            line = json.dumps(result_record(path, scores, tagger.tags, tagger.thresholds)) if as_json \
                else top_line(path, scores, tagger.tags, top)
            write(line, out)
        if progress:
            progress.update()
    if isinstance(tagger, BackgroundTagger):
        tagger.get()  # every file failed to decode: still report a model that does not load
    if progress:
        progress.close()
    return failed


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfmood.predict", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="audio files or folders to walk")
    parser.add_argument("--model", help="exported model folder, e.g. saved_models/mtg-vggish "
                                        "(default: MTG's VGG-ish baseline, downloaded and cached on first use)")
    parser.add_argument("--version", type=int, help="model version (default: the highest)")
    parser.add_argument("--top", type=int, default=5, help="tags shown per file (default: 5)")
    parser.add_argument("--json", action="store_true", help="one JSON object per file, all scores")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error(f"--top must be >= 1. Received: {args.top}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from tfmood.audio import find_audio_files

    files = find_audio_files(args.inputs)
    if not files:
        parser.error(f"no audio files (mp3, ogg, flac, wav) found in {args.inputs}")
    try:
        if args.model is None:
            from tfmood import pretrained

            model = pretrained.default_model()
        else:
            model = args.model
        path = version_dir(model, args.version)
        info = read_info(path)
    except (FileNotFoundError, ValueError, RuntimeError) as error:  # incl. pretrained.PretrainedError
        print(f"error: {error}", file=sys.stderr)
        return 2
    tagger = BackgroundTagger(path, info, pause_gc=True)
    try:
        failed = predict_files(tagger, files, args.top, args.json)
    except ValueError as error:  # e.g. an export without its protocol
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        tagger.resume_gc()
    if failed:
        print(f"{failed} of {len(files)} files could not be read.", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    status = main()
    # Everything is printed: skip TensorFlow's interpreter teardown, seconds of freeing a loaded graph that a
    # finished command does not need (measured ~6 s of a loaded 2-core machine; BENCHMARKS.md).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
