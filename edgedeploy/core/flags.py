"""Options dataclasses and their command-line flags, mapped in one place.

A command's options are dataclasses that validate themselves in ``__post_init__``. Each field that
is also a flag says so with ``flag(...)``; ``add_flags`` builds the argparse arguments from the
fields, and ``from_args`` builds the validated object back from the parsed arguments. So a new flag
is one new field, the library only ever receives the typed object, and the CLI, the Python API and
the server build the same thing::

    @dataclass(frozen=True)
    class WatchOptions:
        folder: str | None = flag("--watch", metavar="DIR", help="classify new images as they appear in DIR")
        poll_interval: float = flag("--poll-interval", default=0.5, type=positive_float, help="seconds between scans")

    add_flags(parser, WatchOptions, group="watch a folder")
    options = from_args(WatchOptions, parser.parse_intermixed_args(argv))

Parsing helpers (``int_at_least``, ``positive_float``, ``comma_list``) raise argparse errors that
echo the value received, so a mistake is one line: ``Received --top-k '0', expected an integer >= 1``.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import MISSING
from typing import Any, Callable, Sequence, TypeVar

__all__ = ["flag", "add_flags", "from_args", "flag_fields", "int_at_least", "positive_float", "comma_list",
           "non_negative_float"]

T = TypeVar("T")
_KEY = "flag"


@dataclasses.dataclass(frozen=True)
class FlagSpec:
    names: tuple[str, ...]
    help: str
    kwargs: dict[str, Any]


def flag(*names: str, default: Any = None, default_factory: Any = MISSING, help: str = "",  # noqa: A002
         **argparse_kwargs: Any) -> Any:
    """A dataclass field that is also a command-line flag (or a positional, when the name has no dash).

    ``argparse_kwargs`` go to ``add_argument`` (``type``, ``metavar``, ``choices``, ``action``,
    ``nargs``). The field's default is the flag's default.
    """
    spec = FlagSpec(names=names, help=help, kwargs=argparse_kwargs)
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={_KEY: spec})
    return dataclasses.field(default=default, metadata={_KEY: spec})


def flag_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` that are flags, in declaration order."""
    return [f for f in dataclasses.fields(cls) if _KEY in f.metadata]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def add_flags(parser: argparse.ArgumentParser | Any, cls: type, group: str | None = None,
              description: str | None = None) -> Any:
    """Add the flags of ``cls`` to ``parser`` (in a titled argument group when ``group`` is given)."""
    target = parser.add_argument_group(group, description) if group else parser
    for f in flag_fields(cls):
        spec: FlagSpec = f.metadata[_KEY]
        kwargs = dict(spec.kwargs)
        kwargs.setdefault("help", spec.help)
        if spec.names[0].startswith("-"):
            kwargs["dest"] = f.name
            kwargs.setdefault("default", _default(f))
            target.add_argument(*spec.names, **kwargs)
        else:  # a positional: its name is the field's
            if kwargs.get("nargs") in ("?", "*"):
                kwargs.setdefault("default", _default(f))
            kwargs.setdefault("metavar", spec.names[0])
            target.add_argument(f.name, **kwargs)
    return target


def from_args(cls: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """``cls`` built from the parsed arguments: its flag fields, plus ``overrides``; it validates itself."""
    values = {f.name: getattr(args, f.name) for f in flag_fields(cls) if hasattr(args, f.name)}
    values.update(overrides)
    return cls(**values)


# -- value parsers (argparse `type=`): the error echoes the value received ------------------------
def int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"Received {text!r}, expected an integer >= {low}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"Received {value}, expected an integer >= {low}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"Received {text!r}, expected a number > 0") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"Received {text}, expected a number > 0")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"Received {text!r}, expected a number >= 0") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"Received {text}, expected a number >= 0")
    return value


def comma_list(text: str | Sequence[str]) -> list[str]:
    """``"a,b, c"`` -> ``["a", "b", "c"]`` (empty items dropped)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    return [t.strip() for t in items if t.strip()]
