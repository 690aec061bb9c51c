"""A tiny name -> object registry, filled by a decorator (timm style).

Models, datasets, export formats and runtime backends each keep one. Adding
one means adding one file that uses ``@REGISTRY.register("name")`` and listing
that module in the package's ``__init__``; nothing else changes.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import EdgeDeployError

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict of named entries with an error that lists the known names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise EdgeDeployError(
                f"unknown {self.kind} {name!r}; expected one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
