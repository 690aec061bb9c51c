"""TrainConfig: every knob of a training run, from defaults, a file and flags.

Precedence, lowest first: the dataclass defaults, then ``--config FILE``
(YAML or TOML, flat keys; dashes or underscores), then the flags given on the
command line. ``None`` means "the model's or the dataset's default", filled
in by ``resolve()``; the resolved config is what ``config.json`` records.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from edgedeploy.core.environment import package_versions as versions
from edgedeploy.core.environment import python_version
from edgedeploy.core.errors import EdgeDeployError

from .data import DATASETS
from .models import MODELS

OPTIMIZERS = ("adam", "rmsprop", "sgd")
FINETUNE = ("head", "partial", "full", "two-phase")
DISTRIBUTE = ("none", "mirrored", "multi-worker")
SPLITS = ("train", "validation", "test")
MIN_IMAGE_SIZE = 32


@dataclass
class TrainConfig:
    """One training run. ``None`` fields take the model's/dataset's default."""

    model: str = "small_cnn"
    dataset: str | None = None  # digits, or folder when data_dir is given
    data_dir: str | None = None  # image folder (folder) or TFDS data_dir (cats_vs_dogs, tf_flowers)
    image_size: int | None = None  # digits 32, photos 160
    epochs: int | None = None  # first (or only) phase
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float | None = None
    finetune: str | None = None  # head | partial | full | two-phase
    unfreeze_from: str | None = None
    fine_tune_epochs: int = 10  # second phase of two-phase
    fine_tune_lr: float | None = None
    weights: str | None = None  # imagenet | none | PATH
    dropout: float | None = None
    augment: bool | None = None
    seed: int = 42
    patience: int = 5  # early stopping on val_loss; 0 turns it off
    distribute: str = "none"
    cluster_timeout: float | None = None  # multi-worker: seconds to wait for peers (None: env or 120)
    output: str | None = None
    force: bool = False
    resume: bool = False

    # -- construction -----------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "TrainConfig":
        """Build from a mapping; keys may use dashes; unknown keys are an error."""
        if not isinstance(data, dict):
            raise EdgeDeployError(f"{source} must hold a mapping of settings, got {type(data).__name__}")
        known = set(cls.field_names())
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise EdgeDeployError(
                    f"{source}: unknown setting {key!r}; expected one of: {', '.join(sorted(known))}"
                )
            kwargs[name] = value
        return cls(**kwargs).checked(source)

    def merged(self, overrides: dict[str, Any], source: str = "flags") -> "TrainConfig":
        data = self.to_dict()
        data.update({k.replace("-", "_"): v for k, v in overrides.items()})
        return TrainConfig.from_dict(data, source)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # -- validation ---------------------------------------------------------
    def checked(self, source: str = "config") -> "TrainConfig":
        """Coerce simple types and validate ranges; raise one-line errors."""
        def want(name: str, kind: type, optional: bool = True) -> None:
            v = getattr(self, name)
            if v is None and optional:
                return
            if kind is float and isinstance(v, int) and not isinstance(v, bool):
                setattr(self, name, float(v))
                return
            if kind is int and isinstance(v, float) and v.is_integer():
                setattr(self, name, int(v))
                return
            if kind is str and isinstance(v, (os.PathLike,)):
                setattr(self, name, os.fspath(v))
                return
            if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
                raise EdgeDeployError(f"{source}: Received {name}={v!r}, expected {kind.__name__}")

        for n in ("model", "optimizer", "distribute"):
            want(n, str, optional=False)
        for n in ("dataset", "data_dir", "finetune", "unfreeze_from", "weights", "output"):
            want(n, str)
        for n in ("image_size", "epochs"):
            want(n, int)
        for n in ("batch_size", "fine_tune_epochs", "seed", "patience"):
            want(n, int, optional=False)
        for n in ("lr", "fine_tune_lr", "dropout", "cluster_timeout"):
            want(n, float)
        for n in ("force", "resume"):
            want(n, bool, optional=False)
        if self.augment is not None and not isinstance(self.augment, bool):
            raise EdgeDeployError(f"{source}: Received augment={self.augment!r}, expected true or false")

        if self.image_size is not None and self.image_size < MIN_IMAGE_SIZE:
            raise EdgeDeployError(f"Received image_size={self.image_size}, expected >= {MIN_IMAGE_SIZE}")
        if self.image_size is not None and self.image_size > 1024:
            raise EdgeDeployError(f"Received image_size={self.image_size}, expected <= 1024")
        for n in ("epochs", "batch_size"):
            v = getattr(self, n)
            if v is not None and v < 1:
                raise EdgeDeployError(f"Received {n}={v}, expected >= 1")
        for n in ("fine_tune_epochs", "patience", "seed"):
            if getattr(self, n) < 0:
                raise EdgeDeployError(f"Received {n}={getattr(self, n)}, expected >= 0")
        for n in ("lr", "fine_tune_lr", "cluster_timeout"):
            v = getattr(self, n)
            if v is not None and not v > 0:
                raise EdgeDeployError(f"Received {n}={v}, expected > 0")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise EdgeDeployError(f"Received dropout={self.dropout}, expected 0 <= dropout < 1")
        self.optimizer = self.optimizer.lower()
        if self.optimizer not in OPTIMIZERS:
            raise EdgeDeployError(f"Received optimizer={self.optimizer!r}, expected one of: {', '.join(OPTIMIZERS)}")
        if self.finetune is not None and self.finetune not in FINETUNE:
            raise EdgeDeployError(f"Received finetune={self.finetune!r}, expected one of: {', '.join(FINETUNE)}")
        if self.distribute not in DISTRIBUTE:
            raise EdgeDeployError(f"Received distribute={self.distribute!r}, expected one of: {', '.join(DISTRIBUTE)}")
        return self


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML (.yaml/.yml) or TOML (.toml) file of flat settings.

    A single top-level ``train`` table/section is accepted too.
    """
    p = Path(path)
    if not p.exists():
        raise EdgeDeployError(f"config file not found: {p}")
    if not p.is_file():
        raise EdgeDeployError(f"config path is a directory, expected a YAML or TOML file: {p}")
    text = p.read_text(encoding="utf-8", errors="replace")
    suffix = p.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml", ".json", ""):
            import yaml  # safe_load: plain data only, never Python objects

            data = yaml.safe_load(text)
        else:
            raise EdgeDeployError(f"config file {p} has suffix {suffix!r}; expected .yaml, .yml or .toml")
    except EdgeDeployError:
        raise
    except Exception as exc:  # yaml.YAMLError, tomllib.TOMLDecodeError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EdgeDeployError(f"cannot parse config file {p}: {first}") from None
    if data is None:
        return {}
    if isinstance(data, dict) and set(data) == {"train"} and isinstance(data["train"], dict):
        data = data["train"]
    if not isinstance(data, dict):
        raise EdgeDeployError(f"config file {p} must hold a mapping of settings, got {type(data).__name__}")
    return data


def resolve(config: TrainConfig) -> TrainConfig:
    """Fill every ``None`` default from the model and dataset registries.

    Also checks names and combinations that need no TensorFlow (fast errors).
    """

    cfg = dataclasses.replace(config).checked()
    spec = MODELS.get(cfg.model)

    if cfg.dataset is None:
        cfg.dataset = "folder" if cfg.data_dir else "digits"
    dspec = DATASETS.get(cfg.dataset)
    if dspec.needs_data_dir and not cfg.data_dir:
        raise EdgeDeployError(f"dataset {cfg.dataset!r} needs --data DIR (one subfolder per class)")
    if cfg.data_dir and not dspec.accepts_data_dir:
        raise EdgeDeployError(f"dataset {cfg.dataset!r} takes no --data folder; drop --data or use --dataset folder")
    if cfg.data_dir:
        d = Path(cfg.data_dir).expanduser()
        if dspec.needs_data_dir and not d.exists():
            raise EdgeDeployError(f"data folder not found: {d}")
        if dspec.needs_data_dir and not d.is_dir():
            raise EdgeDeployError(f"--data expects a folder with one subfolder per class, got a file: {d}")
        cfg.data_dir = str(d.resolve()) if d.exists() else str(d)
        if dspec.check_data_dir is not None:
            dspec.check_data_dir(d)  # no class subfolders, one class: refused before TensorFlow loads

    if cfg.image_size is None:
        cfg.image_size = dspec.default_image_size
    if cfg.augment is None:
        cfg.augment = dspec.default_augment
    if cfg.epochs is None:
        cfg.epochs = dspec.default_epochs
    if cfg.dropout is None:
        cfg.dropout = spec.default_dropout

    if cfg.weights is None:
        cfg.weights = spec.default_weights
    w = cfg.weights
    if w.lower() in ("none", "imagenet"):
        cfg.weights = w.lower()
        if cfg.weights == "imagenet" and not spec.pretrained:
            raise EdgeDeployError(f"model {cfg.model!r} has no ImageNet weights; pass --weights none or --weights PATH")
    else:
        p = Path(w).expanduser()
        if not p.is_file():
            raise EdgeDeployError(f"weights file not found: {p} (pass --weights imagenet, none or a path to a .h5 file)")
        cfg.weights = str(p.resolve())
    pretrained = cfg.weights != "none"

    if cfg.finetune is None:
        cfg.finetune = "two-phase" if (spec.pretrained and pretrained) else "full"
    if not spec.pretrained and cfg.finetune != "full":
        raise EdgeDeployError(
            f"--finetune {cfg.finetune} needs a backbone model ({', '.join(n for n in MODELS.names() if MODELS.get(n).pretrained)}); "
            f"{cfg.model} always trains fully"
        )
    if cfg.finetune == "partial" and not cfg.unfreeze_from:
        cfg.unfreeze_from = spec.default_unfreeze_from
    if cfg.unfreeze_from and cfg.finetune not in ("partial", "two-phase"):
        raise EdgeDeployError(f"--unfreeze-from only applies to --finetune partial or two-phase, not {cfg.finetune}")

    if cfg.lr is None:
        cfg.lr = default_lr(cfg.finetune, pretrained and spec.pretrained)
    if cfg.fine_tune_lr is None:
        cfg.fine_tune_lr = cfg.lr / 100.0 if cfg.finetune == "two-phase" else cfg.lr

    if cfg.output is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        cfg.output = str(Path("runs") / f"{cfg.model}-{cfg.dataset}-{stamp}")
    return cfg


def default_lr(finetune: str, pretrained: bool) -> float:
    """--lr's default, as ``--help`` states it (LR_HELP).

    ``partial`` is fine-tuning: 1e-4, whatever the weights. ``full`` is 1e-4
    on pretrained weights (a new random head on top of trainable pretrained
    layers wants a small step) and 1e-3 from scratch; ``head`` and the head
    phase of ``two-phase`` train a new layer: 1e-3.
    """
    if finetune == "partial" or (finetune == "full" and pretrained):
        return 1e-4
    return 1e-3


LR_HELP = ("learning rate (default: 1e-4 for --finetune partial, and for full on pretrained weights; "
           "1e-3 otherwise: head, two-phase's head phase, training from scratch)")


def config_warnings(cfg: TrainConfig) -> list[str]:
    """Settings of a resolved config that are legal but probably not meant (printed as warnings)."""

    out: list[str] = []
    if MODELS.get(cfg.model).pretrained and cfg.weights == "none" and cfg.finetune in ("head", "partial", "two-phase"):
        frozen = "the whole backbone" if cfg.finetune == "head" else f"the backbone layers below {cfg.unfreeze_from or MODELS.get(cfg.model).default_unfreeze_from}"
        if cfg.finetune == "two-phase":
            frozen = "the whole backbone during the head phase"
        out.append(f"--finetune {cfg.finetune} with --weights none freezes {frozen}, which stays randomly initialised; "
                   f"use --finetune full to train {cfg.model} from scratch, or pretrained --weights")
    return out


def package_versions() -> dict[str, str]:
    """Versions of the packages a run depends on (recorded in config.json)."""
    import platform


    return {"python": python_version(), "platform": platform.platform(),
            **versions(("edgedeploy", "tensorflow", "keras", "numpy", "pillow", "tensorflow-datasets", "matplotlib"),
                       missing="not installed")}


def config_to_json(cfg: TrainConfig) -> str:
    return json.dumps(cfg.to_dict(), indent=2, sort_keys=True)
