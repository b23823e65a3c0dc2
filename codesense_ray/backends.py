"""Named factories for pluggable backends (generators, prompt registries, tracers), chosen by configuration.

Like a Kubernetes `StorageClass` → provisioner lookup: the config names a backend, the registry finds the
factory that builds it. Entries may be given lazily as ``"package.module:function"`` so a registry never imports
its backends' SDKs (or their modules) until one is built — and backends can import the contract module that
holds the registry without an import cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from codesense_ray.errors import InvalidConfig

T = TypeVar("T")


class BackendRegistry(Generic[T]):
    """Backends of one kind; `config_key` is the key users set (named in errors for an unknown backend)."""

    def __init__(self, config_key: str) -> None:
        self.config_key = config_key
        self._factories: dict[str, Callable[..., T] | str] = {}

    def register(self, name: str, factory: Callable[..., T] | str) -> None:
        """Add `name`: a callable, or ``"module:function"`` imported on first use."""
        self._factories[name] = factory

    def names(self) -> list[str]:
        return list(self._factories)

    def build(self, name: str, *args: Any, **kwargs: Any) -> T:
        """Build backend `name`; an unknown name is `InvalidConfig` naming the key and the known backends."""
        try:
            factory = self._factories[name]
        except KeyError:
            raise InvalidConfig(f"{self.config_key}: unknown backend {name!r} (known: {', '.join(self._factories)})") from None
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            factory = getattr(importlib.import_module(module), attr)
            self._factories[name] = factory
        return factory(*args, **kwargs)
