"""train-model: train an image classifier into a run folder.

    train-model                                   # small_cnn on the embedded digits
    train-model --data photos/ --image-size 160   # your folder, one subfolder per class
    train-model --model vgg16 --dataset cats_vs_dogs --finetune partial --unfreeze-from block5_conv1
    train-model --resume --output runs/NAME       # continue an interrupted run

User errors print one line on stderr and exit 2 (``--debug`` shows the
traceback); Ctrl-C or SIGTERM exits 130 and says how to resume.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

from edgedeploy.core.command import ArgumentParser, run_command
from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.core.runfolder import RunFolder

PROG = "train-model"


class _Parser(ArgumentParser):
    """The shared parser (edge_runtime/command.py): a bad flag raises UsageError, one line, exit 2."""


def _listing() -> str:
    from .data import DATASETS
    from .models import MODELS

    lines = ["models:"]
    lines += [f"  {n:<14} {MODELS.get(n).description}" for n in MODELS.names()]
    lines += ["", "datasets:"]
    lines += [f"  {n:<14} {DATASETS.get(n).description}" for n in DATASETS.names()]
    lines += ["", "Writes model.keras, manifest.json, metrics, plots and checkpoints into --output.",
              "Settings may also come from --config FILE (YAML or TOML); flags override it."]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from .config import DISTRIBUTE, FINETUNE, LR_HELP, OPTIMIZERS
    from .data import DATASETS
    from .models import MODELS

    p = _Parser(prog=PROG, description="Train an image classifier and write a run folder for export-model.",
                epilog=_listing(), formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("model and data")
    g.add_argument("--model", metavar="{" + ",".join(MODELS.names()) + "}", help="architecture (default: small_cnn)")
    g.add_argument("--dataset", metavar="{" + ",".join(DATASETS.names()) + "}",
                   help="dataset (default: digits, or folder when --data is given)")
    g.add_argument("--data", dest="data_dir", metavar="DIR",
                   help="image folder with one subfolder per class (or the TFDS data_dir for TFDS datasets)")
    g.add_argument("--image-size", type=int, metavar="S", help="square input size, >= 32 (default: 32 for digits, 160 for photos)")
    g.add_argument("--weights", metavar="imagenet|none|PATH", help="backbone weights (default: imagenet for vgg16/mobilenet_v2)")
    g.add_argument("--dropout", type=float, help="dropout before the classifier (default: per model)")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="flip/rotation/zoom/contrast augmentation (default: on for photos, off for digits)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, help="epochs (of the head phase for two-phase; default: 15 digits, 20 photos)")
    t.add_argument("--batch-size", type=int, help="batch size (default: 32)")
    t.add_argument("--optimizer", choices=OPTIMIZERS, help="optimizer (default: adam)")
    t.add_argument("--lr", type=float, help=LR_HELP)
    t.add_argument("--finetune", choices=FINETUNE,
                   help="which layers train (default: two-phase for pretrained backbones, full otherwise)")
    t.add_argument("--unfreeze-from", metavar="LAYER", help="first backbone layer to train, e.g. block5_conv1 (partial, two-phase)")
    t.add_argument("--fine-tune-epochs", type=int, help="epochs of the second phase of two-phase (default: 10)")
    t.add_argument("--fine-tune-lr", type=float, help="learning rate of the second phase of two-phase (default: lr / 100)")
    t.add_argument("--patience", type=int, help="early stopping patience on val_loss, 0 = off (default: 5)")
    t.add_argument("--seed", type=int, help="random seed (default: 42)")
    t.add_argument("--distribute", choices=DISTRIBUTE,
                   help="tf.distribute strategy: mirrored (GPUs of one machine) or multi-worker (one process per "
                        "worker, each with TF_CONFIG; --batch-size is the global batch)")
    t.add_argument("--cluster-timeout", type=float, metavar="SECONDS",
                   help="multi-worker: how long to wait for the peers at set-up, and for each training step, before "
                        "stopping with an error (default: $EDGEDEPLOY_CLUSTER_TIMEOUT or 120)")
    r = p.add_argument_group("run")
    r.add_argument("--config", metavar="FILE", help="YAML or TOML file of settings; flags override it")
    r.add_argument("--output", metavar="DIR", help="run folder (default: runs/MODEL-DATASET-TIME)")
    r.add_argument("--force", action="store_true", default=None, help="overwrite an existing run folder")
    r.add_argument("--resume", action="store_true", default=None, help="continue the run in --output from its last checkpoint")
    r.add_argument("--debug", action="store_true", help="show tracebacks and TensorFlow's logs")
    return p


def config_from_args(args: argparse.Namespace) -> Any:
    """Defaults < --config FILE < flags; with --resume the run's own config is the base."""
    from .config import TrainConfig, load_config_file

    names = set(TrainConfig.field_names())
    flags = {k: v for k, v in vars(args).items() if k in names and v is not None}
    base: dict[str, Any] = load_config_file(args.config) if args.config else {}
    base = {k.replace("-", "_"): v for k, v in base.items()}
    if flags.get("resume") or (base.get("resume") and "resume" not in flags):
        output = flags.get("output") or base.get("output")
        if not output:
            raise EdgeDeployError("--resume needs --output RUN_FOLDER (the run to continue)")
        saved = RunFolder(output).config().get("config", {})
        base = {**{k: v for k, v in saved.items() if k in names}, **base, "force": False}
    return TrainConfig.from_dict({**base, **flags}, source="settings")


def run(args: argparse.Namespace) -> int:
    """Train what the parsed arguments ask for; run_command maps the errors to exit codes."""
    if not args.debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from .api import train
    from .trainer import TrainingInterrupted

    try:
        train(config_from_args(args))
    except TrainingInterrupted as exc:  # says where the checkpoint is and how to resume
        print(f"{PROG}: {exc.message()}", file=sys.stderr, flush=True)
        return 130
    except OSError as exc:  # a path the user named: missing, a directory, not writable
        if args.debug or exc.filename is None:
            raise
        raise EdgeDeployError(f"{exc.strerror or exc}: {exc.filename}") from None
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of ``train-model``: exit 0 ok, 2 usage, 1 runtime, 130 interrupted (resumable)."""
    return run_command(PROG, build_parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
