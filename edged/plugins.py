"""A registry of plugin modules, imported when first needed: the one mechanism behind source and publisher kinds.

Each plugin module defines `PLUGIN`, an object with a `type` attribute (the name used in the TOML `type` key).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar


class Named(Protocol):
    @property
    def type(self) -> str: ...


P = TypeVar("P", bound=Named)


class Registry(Generic[P]):
    def __init__(self, kind: str, modules: Iterable[str]) -> None:
        self.kind = kind
        self.modules = list(modules)
        self._lock = threading.Lock()
        self._plugins: dict[str, P] | None = None

    def register(self, module: str) -> None:
        """Add a plugin module at run time (tests, third-party kinds); the next lookup imports it."""
        with self._lock:
            if module not in self.modules:
                self.modules.append(module)
            self._plugins = None

    def unregister(self, module: str) -> None:
        with self._lock:
            if module in self.modules:
                self.modules.remove(module)
            self._plugins = None

    def all(self) -> dict[str, P]:
        """type name → plugin, for every registered module, in registration order."""
        with self._lock:
            if self._plugins is None:
                found: dict[str, P] = {}
                for name in self.modules:
                    plugin: P = importlib.import_module(name).PLUGIN
                    if plugin.type in found:
                        raise RuntimeError(f"{self.kind} type {plugin.type!r} is registered twice ({name})")
                    found[plugin.type] = plugin
                self._plugins = found
            return self._plugins

    def get(self, type_name: str) -> P | None:
        return self.all().get(type_name)

    def names(self) -> tuple[str, ...]:
        return tuple(self.all())
