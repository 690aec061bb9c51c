"""edge-infer: classify images with an exported model, on a laptop or a Pi.

    edge-infer MODEL INPUT... [--top-k K] [--json] [--threads N] [--backend B]
               [--batch-size B] [--workers N] [--no-xnnpack] [--max-pixels N]
    edge-infer MODEL --watch DIR [--max-images N] [--duration S]
    edge-infer MODEL --serve [--host 127.0.0.1] [--port 8080] [--max-concurrent N] [--max-queue N]
               [--max-batch N] [--batch-timeout-ms MS] [--quiet]
    edge-infer MODEL --info [--json]                      (no image needed)
    edge-infer MODEL DIR --labels-from-folders [--json]   (accuracy of DIR/<label>/...)
    edge-infer MODEL --video SOURCE [--every N] [--fps F] (file, camera, URL, picamera)

INPUT is a file, a folder (searched recursively; hidden files and symlinks
that leave the folder are skipped) or a glob. Images are decoded and
preprocessed on ``--workers`` threads while the model runs
(edge_runtime/pipeline.py); lines come out in input order. ``--watch``
follows subfolders too; Ctrl-C prints the summary line and exits 130. An
image that cannot be read is reported on stderr, one line, and counted; the
others still run, and the exit code is 1. A user error (missing model, foreign file, bad flag) is one line
on stderr and exit 2; ``--debug`` shows the traceback instead.

Exit codes: 0 all classified, 1 some inputs failed, 2 usage or model error,
130 interrupted.

Imports are lazy: ``--help`` loads neither numpy nor a runtime, and nothing
here ever imports tensorflow, keras, train or export.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from .backends import BACKENDS
from edgedeploy.core.command import ArgumentParser, run_command
from edgedeploy.core.errors import EdgeDeployError

if TYPE_CHECKING:
    from .classifier import ImageClassifier, Prediction
    from .options import ClassifierOptions
    from edgedeploy.core.progress import Progress

PROG = "edge-infer"
BACKEND_NAMES = BACKENDS.choices("auto")  # "auto" + the registry (plug-ins included), read when used
PROGRESS_MIN_TTY = 10  # show a bar on a terminal from this many inputs
PROGRESS_MIN_LOG = 200  # and in a log file from this many


class _Parser(ArgumentParser):
    """The shared parser (edge_runtime/command.py): a bad flag raises UsageError, one line, exit 2."""


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"Received {text!r}, expected an integer >= {low}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"Received {value}, expected an integer >= {low}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"Received {text!r}, expected a number > 0") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"Received {text}, expected a number > 0")
    return value


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"Received {text!r}, expected a number >= 0") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"Received {text}, expected a number >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (kept import-light so ``--help`` is instant)."""
    p = _Parser(prog=PROG, description="Classify images with an edgedeploy model (.tflite or .onnx), without TensorFlow.",
                epilog="Exit codes: 0 ok, 1 some inputs failed, 2 usage/model error, 130 interrupted.")
    p.add_argument("model", help="exported model file (.tflite or .onnx); its manifest is read from the file")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="image files, folders (recursive) or globs")
    p.add_argument("--top-k", type=_int_at_least(1), default=5, metavar="K", help="labels per image (default 5)")
    p.add_argument("--json", action="store_true", help="one JSON object per line: path, label, score, top_k, latency_ms")
    p.add_argument("--threads", type=_int_at_least(1), default=None, metavar="N",
                   help="runtime threads (default: all cores; half of them for a model under 1 GMAC an image)")
    p.add_argument("--backend", default="auto", metavar="B",
                   help=f"{' | '.join(BACKEND_NAMES)} (default auto: by file type and what is installed)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=8, metavar="B", help="images per runtime call (default 8)")
    p.add_argument("--workers", type=_int_at_least(0), default=None, metavar="N",
                   help="threads that decode and preprocess while the model runs (default: the cores the runtime "
                        "threads leave, plus one; 0 none)")
    p.add_argument("--no-xnnpack", dest="xnnpack", action="store_false", help="do not apply the XNNPACK delegate (TFLite)")
    p.add_argument("--max-pixels", type=_int_at_least(1), default=None, metavar="N",
                   help="refuse images with more pixels (default 50,000,000)")
    p.add_argument("--no-verify-hash", dest="verify_hash", action="store_false",
                   help="do not check the model against the SHA-256 in its sidecar manifest")
    p.add_argument("--info", action="store_true",
                   help="describe the model, backend, accelerator really used, tensors and labels (alone: on stdout, "
                        "no image needed; with --json as one JSON object; with inputs: on stderr first)")
    p.add_argument("--labels-from-folders", action="store_true",
                   help="INPUT is one folder of DIR/<label>/... images: print accuracy, per-class P/R/F1 and the confusion matrix")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="never draw a progress bar")
    w = p.add_argument_group("watch a folder")
    w.add_argument("--watch", metavar="DIR", help="classify new images as they appear in DIR (Ctrl-C stops)")
    w.add_argument("--poll-interval", type=_positive_float, default=0.5, metavar="S", help="seconds between scans (default 0.5)")
    w.add_argument("--settle", type=_positive_float, default=0.5, metavar="S",
                   help="a new file must be unmodified this long before it is read (default 0.5)")
    w.add_argument("--max-images", type=_int_at_least(1), default=None, metavar="N", help="stop after N new images")
    w.add_argument("--duration", type=_positive_float, default=None, metavar="S", help="stop after S seconds")
    v = p.add_argument_group("classify a video, camera or stream (pip install 'edgedeploy[video]')")
    v.add_argument("--video", metavar="SOURCE",
                   help="a video file, a camera index or /dev/videoN, an rtsp:// or http(s):// URL, or picamera (Pi); "
                        "--max-images and --duration stop it too")
    v.add_argument("--every", type=_int_at_least(1), default=1, metavar="N", help="classify every Nth frame (default 1)")
    v.add_argument("--fps", type=_positive_float, default=None, metavar="F", help="classify at most F frames per second")
    s = p.add_argument_group("serve over HTTP")
    s.add_argument("--serve", action="store_true",
                   help="POST /predict (image bytes or multipart files) -> JSON; GET /health /info /metrics "
                        "(needs: pip install 'edgedeploy[serve]')")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=_int_at_least(0), default=8080, help="port (default 8080; 0 picks a free one)")
    s.add_argument("--max-body-mb", type=_positive_float, default=20.0, metavar="MB", help="largest request body (default 20)")
    s.add_argument("--request-timeout", type=_positive_float, default=10.0, metavar="S",
                   help="one deadline per request, body upload included (default 10)")
    s.add_argument("--max-concurrent", type=_int_at_least(1), default=8, metavar="N",
                   help="inference slots: requests decoding or in inference at once; more wait in the queue (default 8)")
    s.add_argument("--max-queue", type=_int_at_least(0), default=64, metavar="N",
                   help="requests that may wait for a slot, each up to its deadline; more get 503 + Retry-After (default 64)")
    s.add_argument("--max-batch", type=_int_at_least(1), default=4, metavar="N",
                   help="most images in one runtime call (dynamic-batch models; fixed-batch files use their own) (default 4)")
    s.add_argument("--batch-timeout-ms", type=_nonnegative_float, default=2.0, metavar="MS",
                   help="longest wait for a batch to fill, only while other images are decoding (default 2)")
    s.add_argument("--quiet", action="store_true", help="no access-log line per request")
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    from edgedeploy import __version__

    p.add_argument("--version", action="version", version=f"{PROG} (edgedeploy) {__version__}")
    return p


# -- inputs ------------------------------------------------------------------------
def _walk_folder(root: Path) -> list[Path]:
    from .preprocess import is_image_path

    base = root.resolve()
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):  # never follows symlinked folders
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or not is_image_path(path):
                continue
            if path.is_symlink() and not path.resolve().is_relative_to(base):
                continue  # a link out of the folder is not followed
            found.append(path)
    return found


def expand_inputs(items: Sequence[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files, folders and globs -> image paths in order, plus (input, reason) problems.

    Args:
        items: what the user typed after the model.

    Returns:
        ``(paths, problems)``: unique paths in the order given, and the inputs
        that named nothing usable with the reason why.
    """
    paths: list[Path] = []
    problems: list[tuple[str, str]] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = _walk_folder(p)
            if not found:
                problems.append((item, "folder holds no images"))
        elif p.exists():
            found = [p]
        elif glob.has_magic(item):
            found = []
            for m in sorted(glob.glob(item, recursive=True)):
                found.extend(_walk_folder(Path(m)) if Path(m).is_dir() else [Path(m)])
            if not found:
                problems.append((item, "no file matches this pattern"))
        else:
            found = []
            problems.append((item, "not found"))
        paths.extend(found)
    seen: set[Path] = set()
    unique = [p for p in paths if not (p in seen or seen.add(p))]
    return unique, problems


# -- output ------------------------------------------------------------------------
def format_prediction(path: str, pred: "Prediction", latency_ms: float, as_json: bool) -> str:
    """One output line for one image (JSON or human)."""
    if as_json:
        return json.dumps(pred.to_dict(path=path, latency_ms=latency_ms))
    rest = ", ".join(f"{lab} {s:.1%}" for lab, s in pred.top_k[1:])
    return f"{path}: {pred.label} {pred.score:.1%}" + (f"  (then {rest})" if rest else "") + f"  [{latency_ms:.1f} ms]"


class Runner:
    """Classify paths through the threaded pipeline and print one line per image.

    Decoding and preprocessing run on ``workers`` threads while the model
    runs (edge_runtime/pipeline.py); lines come out in input order.

    Args:
        clf: the opened classifier.
        as_json: JSON lines instead of human lines.
        batch_size: images per runtime call.
        out, err: output streams.
        workers: preprocessing threads (None: min(4, cores); 0: none).
    """

    def __init__(self, clf: "ImageClassifier", as_json: bool, batch_size: int, out=None, err=None,
                 workers: int | None = None):
        self.clf, self.as_json, self.batch_size = clf, as_json, batch_size
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.ok = self.failed = 0
        self.progress: "Progress | None" = None
        self.workers = workers
        self._pipeline = None

    def report(self, item: str, reason: str) -> None:
        """One stderr line for an input that failed; counted."""
        self.failed += 1
        line = f"{PROG}: error: {reason}" if item in reason else f"{PROG}: error: {item}: {reason}"
        (self.progress.write if self.progress else self._err_line)(line)

    def _err_line(self, line: str) -> None:
        print(line, file=self.err, flush=True)

    def run(self, paths: Sequence[Path]) -> None:
        """Classify ``paths``; failures are reported and counted, never raised."""
        from .pipeline import Pipeline, PipelineOptions

        if self._pipeline is None:  # kept across calls: --watch hands over one file at a time
            self._pipeline = Pipeline(self.clf, PipelineOptions(workers=self.workers, batch_size=self.batch_size))
        for path, outcome, latency_ms in self._pipeline.run(paths):
            if self.progress:
                self.progress.update()
            if isinstance(outcome, EdgeDeployError):
                self.report(str(path), str(outcome))
                continue
            line = format_prediction(str(path), outcome, latency_ms, self.as_json)
            if self.progress and self.out is self.err:
                self.progress.write(line)
            else:
                print(line, file=self.out, flush=True)
            self.ok += 1

    def close(self) -> None:
        """Stop the preprocessing threads."""
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None


# -- main --------------------------------------------------------------------------
def classifier_options(args: argparse.Namespace) -> "ClassifierOptions":
    """The validated ClassifierOptions for edge-infer's flags (serve and the API build the same object)."""
    from .options import ClassifierOptions
    from .pipeline import default_runtime_threads
    from .preprocess import DEFAULT_MAX_PIXELS

    threads = args.threads if args.threads is not None else default_runtime_threads(args.model)
    return ClassifierOptions(threads=threads, backend=args.backend, xnnpack=args.xnnpack,
                             max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS, top_k=args.top_k,
                             verify_hash=args.verify_hash)


def _open_classifier(args: argparse.Namespace) -> "ImageClassifier":
    import warnings

    from .classifier import ImageClassifier

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = ImageClassifier(args.model, options=classifier_options(args))
    for w in caught:
        print(f"{PROG}: warning: {' '.join(str(w.message).split())}", file=sys.stderr)
    return clf


def _serve(args: argparse.Namespace) -> int:
    """--serve: check the serve extra first, open the model (timed, for /metrics), serve until SIGTERM/Ctrl-C."""
    from .serve import ServeOptions, require_serve_extra, serve

    require_serve_extra()
    options = ServeOptions(host=args.host, port=args.port, max_body=int(args.max_body_mb * 1024 * 1024),
                           request_timeout=args.request_timeout, max_concurrent=args.max_concurrent,
                           access_log=not args.quiet, max_queue=args.max_queue, max_batch=args.max_batch,
                           batch_timeout_ms=args.batch_timeout_ms)
    t0 = time.perf_counter()
    clf = _open_classifier(args)
    load_s = time.perf_counter() - t0
    if args.info:
        print(f"{PROG}: {json.dumps(clf.describe())}", file=sys.stderr)
    return serve(clf, options, model_load_s=load_s)


def run(args: argparse.Namespace) -> int:
    """Do what the parsed arguments ask. Raises EdgeDeployError on user errors."""
    if args.backend not in BACKEND_NAMES:
        raise EdgeDeployError(f"Received --backend {args.backend!r}, expected one of {', '.join(BACKEND_NAMES)}")
    if args.serve and (args.watch or args.inputs):
        raise EdgeDeployError("--serve takes no INPUT and no --watch; run them separately")
    if not (args.inputs or args.watch or args.serve or args.video or args.info):
        raise EdgeDeployError("no INPUT given: pass image files, folders or globs, or --watch DIR, --video SOURCE, --serve or --info")
    if args.watch and not Path(args.watch).is_dir():
        raise EdgeDeployError(f"--watch needs an existing folder, got {args.watch!r}")
    from .evaluate import check_folder_args
    from .video import options_from_args

    video_opts = options_from_args(args)  # bad flags or a missing file: before the model loads
    check_folder_args(args)
    if args.serve:
        return _serve(args)
    clf = _open_classifier(args)
    if args.info:
        from .info import print_info

        if print_info(clf, args.json, alone=not (args.inputs or args.watch or args.serve or args.video), prog=PROG):
            return 0
    if args.labels_from_folders:
        from .evaluate import run_labelled_folder

        return run_labelled_folder(clf, args.inputs[0], args.json, args.batch_size, _walk_folder, PROG)
    if video_opts is not None:
        from .video import run_video

        return run_video(clf, video_opts, args.json, PROG)
    runner = Runner(clf, args.json, args.batch_size, workers=args.workers)
    try:
        return _run_inputs(args, runner)
    except KeyboardInterrupt:  # Ctrl-C: the summary so far, then the usual "interrupted" (exit 130)
        _summary(runner, force=True)
        raise
    finally:
        runner.close()


def _summary(runner: Runner, force: bool = False, count: int = 0) -> None:
    if force or runner.failed or count >= PROGRESS_MIN_TTY:
        print(f"{PROG}: {runner.ok} classified, {runner.failed} failed", file=sys.stderr, flush=True)


def _run_inputs(args: argparse.Namespace, runner: Runner) -> int:
    paths, problems = expand_inputs(args.inputs)
    for item, reason in problems:
        runner.report(item, reason)
    if paths:
        from edgedeploy.core.progress import Progress

        tty = sys.stderr.isatty()
        show = args.progress and (len(paths) >= PROGRESS_MIN_LOG or (tty and len(paths) >= PROGRESS_MIN_TTY))
        runner.progress = Progress(len(paths), "classifying", enabled=show)
        try:
            runner.run(paths)
        finally:
            runner.progress.close()
            runner.progress = None
    if args.watch:
        from .watch import watch_folder

        def ready() -> None:
            print(f"{PROG}: watching {args.watch} for new images (Ctrl-C stops)", file=sys.stderr, flush=True)

        watch_folder(args.watch, lambda path: runner.run([path]), poll_interval=args.poll_interval,
                     max_images=args.max_images, duration=args.duration, settle=args.settle, on_ready=ready,
                     reraise_interrupt=True)
    _summary(runner, count=len(paths))
    return 1 if runner.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of ``edge-infer``.

    Args:
        argv: arguments without the program name; default ``sys.argv[1:]``.

    Returns:
        The exit code (0, 1, 2 or 130).
    """
    return run_command(PROG, build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
