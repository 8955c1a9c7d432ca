"""One lookup for every extensible concept (backends, offline batching strategies, server policies, scenarios, tasks).

A registry maps names to `"module:Class"` strings that are imported only when a name is looked up, so the package
imports without optional runtimes and validating a configuration never imports a backend. A looked-up class is
checked against the registry's base class and cached. Unknown names get a did-you-mean; a target that needs a
package that is not installed names the pip extra that installs it. Every failure is an `InputError` naming the
configuration field, so the CLI exits 2 with one line instead of a traceback.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from xlt_bench.core.errors import InputError


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest known name, or '' when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def import_target(target: str) -> Any:
    """The object a "module:Name" string points to (ImportError/AttributeError propagate)."""
    module_name, _, attr = target.partition(":")
    if not attr:
        raise ValueError(f"'{target}' is not 'module:Name'")
    return getattr(importlib.import_module(module_name), attr)


# Where each stage's registry lives. Core modules that validate names (config, option checks) reach a registry
# through this table, resolved on first use like a registry's own entries, so no core module imports a stage above it.
REGISTRY_HOMES = {
    "backend": "xlt_bench.backends:BACKENDS",
    "batching strategy": "xlt_bench.batching.strategies:STRATEGIES",
    "scenario": "xlt_bench.scenarios:SCENARIOS",
    "server policy": "xlt_bench.scenarios.serving.policies:POLICIES",
}


def registry_of(concept: str) -> "Registry":
    """The registry of `concept` (a key of REGISTRY_HOMES)."""
    return import_target(REGISTRY_HOMES[concept])


class Registry:
    """Names of one kind (`kind`, e.g. "backend") that a configuration field (`field`) selects.

    `entries`: name -> "module:Class" (imported lazily) or the object itself (for data such as task specs).
    `base`: what a resolved entry must be: a subclass of it (classes) or an instance of it (objects); a
    "module:Class" string is resolved on first use. `extras`: name -> pip extra installing that entry's runtime."""

    def __init__(self, kind: str, field: str, entries: Mapping[str, Any] | None = None, *,
                 base: type | str | None = None, extras: Mapping[str, str] | None = None):
        self.kind, self.field = kind, field
        self._entries: dict[str, Any] = dict(entries or {})
        self._base = base
        self._extras: dict[str, str] = dict(extras or {})
        self._resolved: dict[str, Any] = {}

    # --- names (no imports) ---------------------------------------------------------------------------------------

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def target(self, name: str) -> Any:
        """The registered "module:Class" string (or object) of a known name."""
        self.require(name)
        return self._entries[name]

    def extra(self, name: str) -> str | None:
        return self._extras.get(name)

    def unknown(self, name: str, *, file: str | None = None, line: int | None = None) -> InputError:
        return InputError(f"unknown {self.kind} '{name}'{did_you_mean(name, self._entries)}; known: "
                          f"{', '.join(self._entries)}", file=file, line=line, field=self.field)

    def require(self, name: str, *, file: str | None = None, line: int | None = None) -> None:
        if name not in self._entries:
            raise self.unknown(name, file=file, line=line)

    def check(self, names: Iterable[str], *, file: str | None = None, line: int | None = None) -> None:
        """Every name is registered (InputError otherwise); at least one is given. Imports nothing."""
        names = list(names)
        if not names:
            raise InputError(f"at least one of {', '.join(self._entries)} is required", file=file, line=line,
                             field=self.field)
        for name in names:
            self.require(name, file=file, line=line)

    # --- registration -----------------------------------------------------------------------------------------------

    def register(self, name: str, target: Any, *, extra: str | None = None, replace: bool = False) -> None:
        """Add an entry (a "module:Class" string or the object). Re-registering a name needs `replace`."""
        if name in self._entries and not replace and self._entries[name] != target:
            raise ValueError(f"{self.kind} '{name}' is already registered as {self._entries[name]!r}")
        self._entries[name] = target
        self._resolved.pop(name, None)
        if extra:
            self._extras[name] = extra

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)
        self._resolved.pop(name, None)
        self._extras.pop(name, None)

    # --- lookup (imports) -----------------------------------------------------------------------------------------

    def get(self, name: str, *, file: str | None = None, line: int | None = None) -> Any:
        """The class (or object) registered as `name`, imported on first use and checked against the base."""
        if name in self._resolved:
            return self._resolved[name]
        self.require(name, file=file, line=line)
        target = self._entries[name]
        obj = self._import(name, target, file, line) if isinstance(target, str) else target
        self._check_base(name, obj)
        self._resolved[name] = obj
        return obj

    def available(self, name: str) -> bool:
        """Whether `name` resolves here (its optional runtime is installed)."""
        try:
            self.get(name)
        except InputError:
            return False
        return True

    def _import(self, name: str, target: str, file: str | None, line: int | None) -> Any:
        module_name = target.partition(":")[0]
        try:
            return import_target(target)
        except ImportError as exc:
            missing = getattr(exc, "name", None) or str(exc)
            if missing == module_name and name not in self._extras:
                reason = f"{self.kind} '{name}' is not available in this build"
            else:
                hint = f"; install it with: pip install '{self._extras[name]}'" if name in self._extras else ""
                reason = f"{self.kind} '{name}' needs a package that is not installed ({missing}){hint}"
            raise InputError(reason, file=file, line=line, field=self.field) from None
        except AttributeError:
            raise InputError(f"{self.kind} '{name}': {target} does not exist", file=file, line=line,
                             field=self.field) from None

    def _check_base(self, name: str, obj: Any) -> None:
        base = self._base
        if base is None:
            return
        if isinstance(base, str):
            base = self._base = import_target(base)
        ok = issubclass(obj, base) if isinstance(obj, type) else isinstance(obj, base)
        if not ok:
            raise TypeError(f"{self.kind} '{name}' ({obj!r}) is not a {base.__name__}")
