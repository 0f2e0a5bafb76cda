"""The action registry, and discovery of actions installed as plugins.

A registry is an object, never a module global: a worker builds one with only its queue's
actions, a test builds one with exactly the actions it needs.

Discovery reads the ``conveyor.actions`` entry-point group in three phases, so that one broken
plugin is reported and skipped while the others load:

1. find: list the group's entry points from the installed distributions' metadata, with each
   distribution's name and version, importing nothing;
2. load: import each entry point, whatever it raises (an ImportError, a SyntaxError, an
   `InvalidActionError` from a bad declaration) wrapped in a `FailedPlugin`;
3. validate: turn each loaded object into an `ActionDefinition` and refuse a second definition
   of a type that is already registered, naming both sources.

An action from an entry point is also found by the entry point's id, ``package.module:object``
(NOMAD's name for an action): `get`, ``in`` and everything built on them take either.

Built-in actions are entry points of the same group, declared by Conveyor's own distribution.
That distribution is read first, so a plugin cannot take over a built-in's type: it is
reported as a duplicate instead.
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib.metadata
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from conveyor.actions._declare import _ATTR, definition_of
from conveyor.actions._executor import ActionDefinition
from conveyor.actions._meta import ActionMeta
from conveyor.errors import DuplicateActionError, UnknownActionError

DEFAULT_GROUP = "conveyor.actions"
_OWN_DISTRIBUTION = "conveyor"

Phase = Literal["find", "load", "validate"]


@dataclass(frozen=True)
class FailedPlugin:
    """An entry point that could not become an action, and why.

    Attributes:
        package: The name of the distribution that declares the entry point.
        entry_point: The entry point as declared, ``name = module:attr``.
        error: What went wrong: the exception raised while importing it, an
            `InvalidActionError`, or a `DuplicateActionError` naming both sources.
        version: The distribution's version.
        phase: Where it failed: ``find`` (unreadable metadata), ``load`` (import) or
            ``validate`` (not an action, or a type already registered).
    """

    package: str
    entry_point: str
    error: BaseException
    version: str = ""
    phase: Phase = "load"

    @property
    def message(self) -> str:
        """The error as one line: its class and its message."""
        return f"{type(self.error).__name__}: {self.error}"

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready form, for the CLI and the API."""
        return {
            "package": self.package,
            "version": self.version,
            "entry_point": self.entry_point,
            "phase": self.phase,
            "error": self.message,
        }

    def __str__(self) -> str:
        package = f"{self.package} {self.version}".strip()
        return f"{package} [{self.entry_point}]: {self.message}"


@dataclass(frozen=True)
class DiscoveryReport:
    """What one discovery found: the actions it registered and the plugins it skipped."""

    group: str
    loaded: list[ActionDefinition] = field(default_factory=list)
    failed: list[FailedPlugin] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every entry point became an action."""
        return not self.failed

    def summary(self) -> str:
        """A readable account: counts, the loaded types, then one line per failure."""
        lines = [
            f"{len(self.loaded)} action(s) loaded from entry-point group {self.group!r}, "
            f"{len(self.failed)} plugin(s) failed"
        ]
        if self.loaded:
            lines.append("loaded: " + ", ".join(sorted(d.type for d in self.loaded)))
        lines.extend(f"failed: {failure}" for failure in self.failed)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for the CLI and the API."""
        return {
            "group": self.group,
            "loaded": [
                {"type": d.type, "version": d.meta.version, "source": d.source} for d in self.loaded
            ],
            "failed": [failure.to_dict() for failure in self.failed],
        }

    def __str__(self) -> str:
        return self.summary()


@dataclass(frozen=True)
class _Plugin:
    """An entry point found in phase 1, not imported yet."""

    package: str
    version: str
    entry_point: importlib.metadata.EntryPoint

    @property
    def declared(self) -> str:
        return f"{self.entry_point.name} = {self.entry_point.value}"

    @property
    def source(self) -> str:
        return f"{self.package} {self.version} ({self.declared})"

    def failure(self, error: BaseException, phase: Phase) -> FailedPlugin:
        return FailedPlugin(self.package, self.declared, error, self.version, phase)


class ActionRegistry:
    """Action definitions by type.

    Build one empty and `add` actions, or get one with every installed action from
    `ActionRegistry.default()`.
    """

    def __init__(self, actions: Iterable[object] = ()) -> None:
        """Start with `actions` (anything `add` accepts), all or none of them."""
        self._definitions: dict[str, ActionDefinition] = {}
        self._aliases: dict[str, str] = {}
        self._reports: builtins.list[DiscoveryReport] = []
        self.add_many(actions)

    @classmethod
    def default(cls, group: str = DEFAULT_GROUP) -> ActionRegistry:
        """A new registry holding every action installed under the entry-point group.

        Nothing is cached: each call discovers again. Plugins that failed are in `failures`.
        """
        registry = cls()
        registry.discover(group)
        return registry

    def add(self, obj: object, source: str | None = None) -> ActionDefinition:
        """Register one action.

        Args:
            obj: A class decorated with `register_action`, a function decorated with
                `action`, a class with `meta` and `executor_class`, or an `ActionDefinition`.
            source: Where it comes from, for messages; defaults to its module and name.

        Returns:
            The registered definition.

        Raises:
            InvalidActionError: `obj` is not an action.
            DuplicateActionError: its type is already registered (both sources named).
        """
        return self.add_many([obj], source=source)[0]

    def add_many(
        self, objs: Iterable[object], source: str | None = None
    ) -> builtins.list[ActionDefinition]:
        """Register several actions, all of them or (on any error) none.

        Raises:
            InvalidActionError: one of them is not an action.
            DuplicateActionError: a type is registered already or given twice.
        """
        definitions = [_definition(obj, source) for obj in objs]
        merged = dict(self._definitions)
        for definition in definitions:
            if definition.type in merged:
                raise DuplicateActionError(
                    definition.type, merged[definition.type].source, definition.source
                )
            merged[definition.type] = definition
        self._definitions = merged
        for definition in definitions:
            self._alias(definition)
        return definitions

    def _alias(self, definition: ActionDefinition) -> None:
        # A type always wins over an alias, and the first action to claim an alias keeps it.
        for alias in definition.aliases:
            if alias not in self._definitions:
                self._aliases.setdefault(alias, definition.type)

    def _resolve(self, name: str) -> str:
        return name if name in self._definitions else self._aliases.get(name, name)

    def get(self, action_type: str) -> ActionDefinition:
        """The definition of `action_type` (a type, or the id of the entry point it came from).

        Raises:
            UnknownActionError: nothing of that type is registered (the known types named).
        """
        try:
            return self._definitions[self._resolve(action_type)]
        except KeyError:
            raise UnknownActionError(action_type, self.types()) from None

    def get_meta(self, action_type: str) -> ActionMeta | None:
        """The metadata of `action_type`, or None when nothing of that type is registered.

        BudPipeline's registry method, kept so code written for it ports unchanged.
        """
        definition = self._definitions.get(action_type)
        return definition.meta if definition is not None else None

    def __contains__(self, action_type: object) -> bool:
        return isinstance(action_type, str) and self._resolve(action_type) in self._definitions

    def __len__(self) -> int:
        return len(self._definitions)

    def __iter__(self) -> Iterator[ActionDefinition]:
        return iter(self.list())

    def types(self) -> builtins.list[str]:
        """The registered types, sorted."""
        return sorted(self._definitions)

    def list(self) -> builtins.list[ActionDefinition]:
        """The registered definitions, sorted by type."""
        return [self._definitions[t] for t in self.types()]

    def by_category(self) -> dict[str, builtins.list[ActionDefinition]]:
        """The definitions grouped by category; categories and types sorted."""
        groups: dict[str, builtins.list[ActionDefinition]] = {}
        for definition in self.list():
            groups.setdefault(definition.meta.category, []).append(definition)
        return dict(sorted(groups.items()))

    def for_queue(self, queue: str) -> ActionRegistry:
        """A new registry with only the actions that run on `queue`.

        A worker for one queue loads these and nothing else, so the extras that other
        queues' actions need do not have to be installed where it runs.
        """
        return ActionRegistry(d for d in self.list() if d.meta.queue == queue)

    @property
    def failures(self) -> builtins.list[FailedPlugin]:
        """The plugins every discovery of this registry reported and skipped."""
        return [failure for report in self._reports for failure in report.failed]

    def discover(self, group: str = DEFAULT_GROUP) -> DiscoveryReport:
        """Find, load and validate the actions installed under an entry-point group.

        A plugin that fails is reported in the result, never raised: one broken
        distribution must not take the service down. Discovering again skips what is
        already registered from the same entry point.
        """
        plugins, failed = _find(group)
        loaded_objects, load_failures = _load(plugins)
        failed.extend(load_failures)
        loaded: builtins.list[ActionDefinition] = []
        for plugin, obj in loaded_objects:
            try:
                definition = dataclasses.replace(
                    definition_of(obj, plugin.source), aliases=(plugin.entry_point.value,)
                )
                existing = self._definitions.get(definition.type)
                if existing == definition:
                    continue
                if existing is not None:
                    raise DuplicateActionError(definition.type, existing.source, definition.source)
            except Exception as exc:  # noqa: BLE001 - reported as a failed plugin
                failed.append(plugin.failure(exc, "validate"))
                continue
            self._definitions[definition.type] = definition
            self._alias(definition)
            loaded.append(definition)
        report = DiscoveryReport(group=group, loaded=loaded, failed=failed)
        self._reports.append(report)
        return report

    @property
    def last_discovery(self) -> DiscoveryReport | None:
        """The report of the most recent `discover`, if there was one."""
        return self._reports[-1] if self._reports else None

    def __repr__(self) -> str:
        return f"ActionRegistry({', '.join(self.types())})"


def _definition(obj: object, source: str | None) -> ActionDefinition:
    if source is None and not isinstance(obj, ActionDefinition) and not hasattr(obj, _ATTR):
        # A plain class with meta and executor_class: name it, or a duplicate error would
        # blame "<direct>".
        source = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"
    return definition_of(obj, source)


def _find(group: str) -> tuple[list[_Plugin], list[FailedPlugin]]:
    """Phase 1: the group's entry points, read from metadata only."""
    plugins: list[_Plugin] = []
    failed: list[FailedPlugin] = []
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        try:
            entry_points = [ep for ep in dist.entry_points if ep.group == group]
            if not entry_points:
                continue  # most distributions: skip parsing their metadata
            name = dist.metadata["Name"] or "?"
            version = dist.version or ""
        except Exception as exc:  # noqa: BLE001 - unparseable metadata is reported
            failed.append(FailedPlugin(_dist_label(dist), "<metadata>", exc, phase="find"))
            continue
        # A distribution can be on sys.path twice (a --target directory over a venv, a
        # misconfigured system Python); the first one wins, as it does for imports.
        if _normalize(name) in seen:
            continue
        seen.add(_normalize(name))
        plugins.extend(_Plugin(name, version, ep) for ep in entry_points)
    # Conveyor's own (the built-ins) first, then a stable order, so which of two duplicates
    # wins does not depend on the order of sys.path entries.
    plugins.sort(
        key=lambda p: (
            _normalize(p.package) != _OWN_DISTRIBUTION,
            _normalize(p.package),
            p.declared,
        )
    )
    return plugins, failed


def _load(
    plugins: Iterable[_Plugin],
) -> tuple[list[tuple[_Plugin, object]], list[FailedPlugin]]:
    """Phase 2: import each entry point, every error kept with the plugin it belongs to."""
    loaded: list[tuple[_Plugin, object]] = []
    failed: list[FailedPlugin] = []
    for plugin in plugins:
        try:
            obj = plugin.entry_point.load()
        # SystemExit too: a plugin that calls sys.exit() at import must not stop the service.
        except (Exception, SystemExit) as exc:  # noqa: BLE001
            failed.append(plugin.failure(exc, "load"))
            continue
        loaded.append((plugin, obj))
    return loaded, failed


def _normalize(name: str) -> str:
    # PEP 503 name normalisation.
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist_label(dist: importlib.metadata.Distribution) -> str:
    path = getattr(dist, "_path", None)
    return str(path) if path is not None else repr(dist)
