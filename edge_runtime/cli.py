"""edge-infer: classify images with an exported model, on a laptop or a Pi.

    edge-infer MODEL INPUT... [--top-k K] [--json] [--threads N] [--backend B]
               [--batch-size B] [--workers N] [--no-xnnpack] [--max-pixels N]
    edge-infer MODEL --watch DIR [--max-images N] [--duration S]
    edge-infer MODEL --serve [--host 127.0.0.1] [--port 8080] [--max-concurrent N] [--quiet]
    edge-infer MODEL --info [--json]                      (no image needed)
    edge-infer MODEL DIR --labels-from-folders [--json]   (accuracy of DIR/<label>/...)
    edge-infer MODEL --video SOURCE [--every N] [--fps F] (file, camera, URL, picamera)

Flags go anywhere on the line, before, between or after MODEL and the INPUTs.

This module only turns the command line into typed options: every flag is a field of an options
dataclass of the library (``ClassifierOptions``, ``PipelineOptions``, ``WatchOptions``,
``VideoOptions``, ``ServeOptions``, ``StopOptions``, and ``InferOptions`` here), the parser is
built from those fields (``edgedeploy.core.flags``), and the modes that exclude each other are
declared once, in ``MODES``. Imports are lazy: ``--help`` loads neither numpy nor a runtime, and
nothing here ever imports tensorflow, keras, train or export.

Exit codes: 0 all classified, 1 some inputs failed, 2 usage or model error, 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from edgedeploy import __version__
from edgedeploy.core.command import ArgumentParser, UsageError, run_command
from edgedeploy.core.flags import add_flags, flag, flag_fields, from_args

from .backends import BACKENDS
from .options import ClassifierOptions, StopOptions
from .pipeline import PipelineOptions, default_runtime_threads
from .runner import LATENCY_HELP
from .serve import ServeOptions
from .video import VideoOptions
from .watch import WatchOptions

if TYPE_CHECKING:
    from .classifier import ImageClassifier
    from .runner import Runner

PROG = "edge-infer"
PROGRESS_MIN_TTY = 10  # show a bar on a terminal from this many inputs
PROGRESS_MIN_LOG = 200  # and in a log file from this many


@dataclass(frozen=True)
class Mode:
    """A way to run edge-infer: the option that selects it, the options class it owns, and its INPUTs."""

    name: str  # the field (in InferOptions or the mode's own options) that selects it
    flag: str
    inputs: str  # "none" | "any" | "one folder"
    owns: type | None = None  # the options class whose other flags apply to this mode only


# The modes that exclude each other, declared once. Classifying INPUTs is the default; --info combines with any.
MODES = (
    Mode("serve", "--serve", "none", ServeOptions),
    Mode("video", "--video", "none", VideoOptions),
    Mode("watch", "--watch", "any", WatchOptions),
    Mode("labels_from_folders", "--labels-from-folders", "one folder"),
)


@dataclass(frozen=True)
class InferOptions:
    """What to run: the model, the inputs, the output form, and which mode."""

    model: str = flag("MODEL", default="", help="exported model file (.tflite or .onnx); its manifest is read from the file")
    inputs: list[str] = flag("INPUT", default_factory=list, nargs="*", help="image files, folders (recursive) or globs")
    json: bool = flag("--json", default=False, action="store_true",
                      help=f"one JSON object per line: path, label, score, top_k, latency_ms ({LATENCY_HELP})")
    info: bool = flag("--info", default=False, action="store_true",
                      help="describe the model, backend, accelerator really used, tensors and labels (alone: on stdout, "
                           "no image needed; with --json as one JSON object; with inputs: on stderr first)")
    labels_from_folders: bool = flag("--labels-from-folders", default=False, action="store_true",
                                     help="INPUT is one folder of DIR/<label>/... images: print accuracy, per-class "
                                          "P/R/F1 and the confusion matrix")
    serve: bool = flag("--serve", default=False, action="store_true",
                       help="POST /predict (image bytes or multipart files) -> JSON; GET /health /info /metrics "
                            "(needs: pip install 'edgedeploy[serve]')")
    progress: bool = flag("--no-progress", default=True, action="store_false", help="never draw a progress bar")
    debug: bool = flag("--debug", default=False, action="store_true", help="show tracebacks for errors")
    classifier: ClassifierOptions = field(default_factory=ClassifierOptions)
    pipeline: PipelineOptions = field(default_factory=PipelineOptions)
    watch: WatchOptions = field(default_factory=WatchOptions)
    video: VideoOptions | None = None
    server: ServeOptions = field(default_factory=ServeOptions)
    stop: StopOptions = field(default_factory=StopOptions)

    def __post_init__(self) -> None:
        if not self.model:
            raise UsageError("the following arguments are required: MODEL")
        names = BACKENDS.choices("auto")
        if self.classifier.backend not in names:
            raise UsageError(f"Received --backend {self.classifier.backend!r}, expected one of {', '.join(names)}")
        chosen = self.modes()
        if len(chosen) > 1:
            raise UsageError(f"Received {' and '.join(m.flag for m in chosen)}: these modes exclude each other; run them separately")
        mode = chosen[0] if chosen else None
        if mode is not None and mode.inputs == "none" and self.inputs:
            raise UsageError(f"Received {mode.flag} with {len(self.inputs)} INPUT(s); {mode.flag} takes no INPUT, run them separately")
        if mode is not None and mode.inputs == "one folder" and len(self.inputs) != 1:
            raise UsageError(f"Received {mode.flag} with {len(self.inputs)} INPUT(s), expected one folder of label folders")
        if self.video is not None:
            from .video import source_kind

            source_kind(self.video.source)  # a missing file: one line before the model loads
        if mode is None and not self.inputs and not self.info:
            raise UsageError("no INPUT given: pass image files, folders or globs, or --watch DIR, --video SOURCE, "
                             "--serve or --info")

    def modes(self) -> list[Mode]:
        selected = {"serve": self.serve, "video": self.video is not None, "watch": self.watch.folder is not None,
                    "labels_from_folders": self.labels_from_folders}
        return [m for m in MODES if selected[m.name]]


def build_parser() -> argparse.ArgumentParser:
    """The parser, built from the options' fields (kept import-light so ``--help`` is instant)."""
    p = ArgumentParser(prog=PROG, description="Classify images with an edgedeploy model (.tflite or .onnx), without "
                       "TensorFlow. Flags may go anywhere on the line.",
                       epilog=f"backends: {', '.join(BACKENDS.choices('auto'))}. {LATENCY_HELP}. "
                              "Exit codes: 0 ok, 1 some inputs failed, 2 usage/model error, 130 interrupted.")
    add_flags(p, InferOptions)
    add_flags(p, ClassifierOptions)
    add_flags(p, PipelineOptions)
    add_flags(p, WatchOptions, group="watch a folder")
    add_flags(p, StopOptions, group="stop a --watch or --video run")
    add_flags(p, VideoOptions, group="classify a video, camera or stream (pip install 'edgedeploy[video]')")
    add_flags(p, ServeOptions, group="serve over HTTP")
    p.add_argument("--version", action="version", version=f"{PROG} (edgedeploy) {__version__}")
    return p


def _mode_only_flags_without_their_mode(args: argparse.Namespace) -> None:
    """A flag that belongs to one mode (--fps, --port, --settle ...) given without that mode is a usage error."""
    if not (args.folder or args.source):
        for f in flag_fields(StopOptions):
            if getattr(args, f.name) != f.default:
                raise UsageError(f"Received {f.metadata['flag'].names[0]} without --watch or --video; it stops those only")
    for mode in MODES:
        if mode.owns is None or getattr(args, _selector(mode)):
            continue
        for f in flag_fields(mode.owns):
            if f.name != _selector(mode) and getattr(args, f.name) != f.default:
                raise UsageError(f"Received {f.metadata['flag'].names[0]} without {mode.flag}; it applies to {mode.flag} only")


def _selector(mode: Mode) -> str:
    return {"video": "source", "watch": "folder"}.get(mode.name, mode.name)


def options_from(args: argparse.Namespace) -> InferOptions:
    """The one place the parsed flags become typed options."""
    _mode_only_flags_without_their_mode(args)
    stop = from_args(StopOptions, args)
    video = from_args(VideoOptions, args, max_frames=stop.max_images, duration=stop.duration) if args.source else None
    # edge-infer's thread default follows the model's cost (pipeline.default_runtime_threads); the API's is all cores
    threads = args.threads if args.threads is not None else default_runtime_threads(args.model)
    classifier = from_args(ClassifierOptions, args, threads=threads)
    return from_args(InferOptions, args, classifier=classifier, pipeline=from_args(PipelineOptions, args),
                     watch=from_args(WatchOptions, args), video=video, server=from_args(ServeOptions, args), stop=stop)


# -- running ---------------------------------------------------------------------------
def _open_classifier(opts: InferOptions) -> "ImageClassifier":
    import warnings

    from .classifier import ImageClassifier

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = ImageClassifier.from_options(opts.model, opts.classifier)
    for w in caught:
        print(f"{PROG}: warning: {' '.join(str(w.message).split())}", file=sys.stderr)
    return clf


def _serve(opts: InferOptions) -> int:
    """--serve: check the serve extra first, open the model (timed, for /metrics), serve until SIGTERM/Ctrl-C."""
    from .serve import require_serve_extra, serve

    require_serve_extra()
    t0 = time.perf_counter()
    clf = _open_classifier(opts)
    load_s = time.perf_counter() - t0
    if opts.info:
        print(f"{PROG}: {json.dumps(clf.describe())}", file=sys.stderr)
    return serve(clf, opts.server, model_load_s=load_s)


def run(args: argparse.Namespace) -> int:
    """Do what the parsed arguments ask. Raises EdgeDeployError on user errors."""
    return run_options(options_from(args))


def run_options(opts: InferOptions) -> int:
    """Run one edge-infer invocation from its typed options."""
    if opts.serve:
        return _serve(opts)
    clf = _open_classifier(opts)
    if opts.info:
        from .info import print_info

        if print_info(clf, opts.json, alone=not (opts.inputs or opts.modes()), prog=PROG):
            return 0
    if opts.labels_from_folders:
        from .evaluate import run_labelled_folder
        from .inputs import walk_folder

        return run_labelled_folder(clf, opts.inputs[0], opts.json, opts.pipeline.batch_size, walk_folder, PROG)
    if opts.video is not None:
        from .video import run_video

        return run_video(clf, opts.video, opts.json, PROG)
    from .runner import Runner

    runner = Runner(clf, opts.json, opts.pipeline, prog=PROG)
    try:
        return _run_inputs(opts, runner)
    except KeyboardInterrupt:  # Ctrl-C: the summary so far, then the usual "interrupted" (exit 130)
        runner.summary(force=True)
        raise
    finally:
        runner.close()


def _run_inputs(opts: InferOptions, runner: "Runner") -> int:
    from .inputs import expand_inputs

    paths, problems = expand_inputs(opts.inputs)
    for item, reason in problems:
        runner.report(item, reason)
    if paths:
        from edgedeploy.core.progress import Progress

        tty = sys.stderr.isatty()
        show = opts.progress and (len(paths) >= PROGRESS_MIN_LOG or (tty and len(paths) >= PROGRESS_MIN_TTY))
        runner.progress = Progress(len(paths), "classifying", enabled=show)
        try:
            runner.run(paths)
        finally:
            runner.progress.close()
            runner.progress = None
    if opts.watch.folder is not None:
        from .watch import watch_folder

        def ready() -> None:
            print(f"{PROG}: watching {opts.watch.folder} for new images (Ctrl-C stops)", file=sys.stderr, flush=True)

        w = opts.watch
        watch_folder(w.folder, lambda path: runner.run([path]), poll_interval=w.poll_interval, max_images=opts.stop.max_images,
                     duration=opts.stop.duration, settle=w.settle, on_ready=ready, reraise_interrupt=True)
    runner.summary(count=len(paths), min_count=PROGRESS_MIN_TTY)
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
