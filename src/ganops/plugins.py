"""Named registries for pluggable parts (data sources, architectures, losses, metrics).

One dict per kind, filled by a decorator (the pattern of stylegan2-ada's metric registry). The
valid names of each kind are declared in ``ganops.catalog``, which the params validator reads
without importing the implementations (and torch); a registry refuses an undeclared name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from ganops.catalog import Kind
from ganops.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: Kind) -> None:
        self.kind = kind.label
        self._declared = kind.names
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        if name not in self._declared:
            raise ValueError(f"{self.kind} {name!r} is not declared in ganops.catalog: add it there")

        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)
