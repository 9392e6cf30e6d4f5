"""Named registries for pluggable parts (data sources, architectures, losses).

One dict per kind, filled by a decorator, so the params validator can list the valid names
in its error messages (the pattern of stylegan2-ada's metric registry).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from ganops.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
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
