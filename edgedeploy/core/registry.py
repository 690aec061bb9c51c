"""A tiny name -> object registry, filled by a decorator (timm style).

Models, datasets, export formats, model file formats and runtime backends each
keep one. Adding an entry means adding one file that uses
``@REGISTRY.register("name")``:

- a registry built with ``package=`` imports every public module of that
  package (``pkgutil``) the first time it is asked for a name, so the new
  file is found without being listed anywhere;
- a registry built with ``plugin_env=`` also imports the modules named in that
  environment variable (comma-separated), so a plug-in outside the project
  registers itself the same way. ``Registry.load_plugin(module)`` imports one
  and adds it to the variable, so child processes (the subprocess probe, the
  benchmark workers) see it too.

Entry points (``importlib.metadata``) were left out on purpose: scanning them
costs every cold start on a Pi a few tens of milliseconds
(reports/plugin_discovery_cost.txt).
"""
from __future__ import annotations

import importlib
import os
from typing import Any, Callable, Generic, Iterator, Sequence, TypeVar

from .errors import EdgeDeployError

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict of named entries with an error that lists the known names.

    Args:
        kind: what the entries are ("backend"), for error messages.
        package: dotted name of a package whose public modules are imported
            on first lookup (each registers its entries when imported).
        plugin_env: an environment variable naming extra modules to import.
        order: sort key of an entry for ``names()`` (ties by name); default by name.
    """

    def __init__(self, kind: str, package: str | None = None, plugin_env: str | None = None,
                 order: Callable[[T], Any] | None = None):
        self.kind = kind
        self.package = package
        self.plugin_env = plugin_env
        self.order = order
        self._entries: dict[str, T] = {}
        self._discovered = package is None and plugin_env is None

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return deco

    # -- discovery ------------------------------------------------------------------
    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True  # set first: a module may look names up while it is imported
        try:
            if self.package:
                import pkgutil

                pkg = importlib.import_module(self.package)
                for info in pkgutil.iter_modules(pkg.__path__):
                    if not info.name.startswith("_"):
                        importlib.import_module(f"{self.package}.{info.name}")
            for module in self.plugin_modules():
                self._import_plugin(module)
        except BaseException:
            self._discovered = False  # try again (and fail the same way) on the next lookup
            raise

    def plugin_modules(self) -> list[str]:
        """The plug-in modules named in ``plugin_env`` (comma-separated)."""
        if not self.plugin_env:
            return []
        return [m.strip() for m in os.environ.get(self.plugin_env, "").split(",") if m.strip()]

    def _import_plugin(self, module: str) -> None:
        try:
            importlib.import_module(module)
        except Exception as exc:  # ImportError, or an error inside the plug-in's own code
            where = f" (named in {self.plugin_env})" if module in self.plugin_modules() else ""
            raise EdgeDeployError(f"could not import {self.kind} plug-in module {module!r}{where}: "
                                  f"{type(exc).__name__}: {exc}") from None

    def load_plugin(self, module: str) -> None:
        """Import ``module`` (which registers entries) here and in child processes.

        The module is appended to ``plugin_env`` in ``os.environ``, so the
        processes this one starts register it as well.
        """
        self._import_plugin(module)
        if self.plugin_env:
            names = self.plugin_modules()
            if module not in names:
                os.environ[self.plugin_env] = ",".join(names + [module])

    # -- lookup ---------------------------------------------------------------------
    def get(self, name: str) -> T:
        self._discover()
        try:
            return self._entries[name]
        except KeyError:
            raise EdgeDeployError(
                f"unknown {self.kind} {name!r}; expected one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        self._discover()
        if self.order is None:
            return sorted(self._entries)
        return sorted(self._entries, key=lambda n: (self.order(self._entries[n]), n))

    def choices(self, *extra: str) -> "Names":
        """A live, read-only sequence of ``extra`` + the registered names (see ``Names``)."""
        return Names(self, extra)

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


class Names(Sequence[str]):
    """The names of a registry (after some fixed ones, like "auto"), read on every use.

    A CLI can keep this as a module constant: building it imports nothing and
    discovers nothing, and a plug-in registered later still shows up.
    """

    def __init__(self, registry: Registry, extra: Sequence[str] = ()):
        self._registry, self._extra = registry, tuple(extra)

    def _all(self) -> tuple[str, ...]:
        return self._extra + tuple(n for n in self._registry.names() if n not in self._extra)

    def __getitem__(self, i):  # type: ignore[override]
        return self._all()[i]

    def __len__(self) -> int:
        return len(self._all())

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __contains__(self, name: object) -> bool:
        return name in self._all()

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, (tuple, list, Names)) else other)

    def __repr__(self) -> str:
        return repr(self._all())
