"""The dependency graph of a pipeline's steps: order, cycles and ancestry.

Built from the steps as written, tolerating the mistakes validation reports (unknown
dependencies are left out, a repeated id keeps its first step), so validation can ask graph
questions of a pipeline that is not valid yet.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from conveyor.errors import PipelineValidationError
from conveyor.pipeline.spec import PipelineSpec


class StepGraph:
    """Steps by id with their dependencies, in file order.

    Args:
        dependencies: Each step id with the ids it depends on, in file order. Dependencies
            on ids that are not keys are dropped.
    """

    def __init__(self, dependencies: Mapping[str, Sequence[str]]) -> None:
        self._deps: dict[str, tuple[str, ...]] = {
            step_id: tuple(dict.fromkeys(dep for dep in deps if dep in dependencies))
            for step_id, deps in dependencies.items()
        }
        self._dependents: dict[str, list[str]] = {step_id: [] for step_id in self._deps}
        for step_id, deps in self._deps.items():
            for dep in deps:
                self._dependents[dep].append(step_id)
        self._upstream: dict[str, frozenset[str]] = {}
        self._bits = {step_id: 1 << position for position, step_id in enumerate(self._deps)}
        self._masks: dict[str, int] = {}

    @classmethod
    def of(cls, spec: PipelineSpec) -> StepGraph:
        """The graph of `spec`'s steps (the first step wins when an id repeats)."""
        dependencies: dict[str, Sequence[str]] = {}
        for step in spec.steps:
            dependencies.setdefault(step.id, step.depends_on)
        return cls(dependencies)

    @property
    def ids(self) -> list[str]:
        """The step ids, in file order."""
        return list(self._deps)

    def dependencies(self, step_id: str) -> tuple[str, ...]:
        """The direct dependencies of `step_id` that are steps of this graph."""
        return self._deps[step_id]

    def dependents(self, step_id: str) -> list[str]:
        """The steps that depend directly on `step_id`, in file order."""
        return list(self._dependents[step_id])

    def upstream(self, step_id: str) -> frozenset[str]:
        """Every step `step_id` depends on, directly or through others (itself excluded).

        A step on a cycle does not count as its own ancestor.
        """
        cached = self._upstream.get(step_id)
        if cached is not None:
            return cached
        seen: set[str] = set()
        pending = list(self._deps[step_id])
        # Iterative on purpose: a long chain of steps must not hit the recursion limit.
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            pending.extend(self._deps[current])
        seen.discard(step_id)
        result = frozenset(seen)
        self._upstream[step_id] = result
        return result

    def ancestry(self, dependencies: Sequence[str]) -> Ancestry:
        """The steps a step with these `dependencies` may read: them and all theirs.

        Kept as bits of one integer per step, so a 10,000-step chain costs megabytes and
        milliseconds where a set of ancestors per step costs seconds.
        """
        mask = 0
        for dep in dependencies:
            if dep in self._bits:
                mask |= self._bits[dep] | self._upstream_mask(dep)
        return Ancestry(self._bits, mask)

    def _upstream_mask(self, step_id: str) -> int:
        masks = self._masks
        if step_id in masks:
            return masks[step_id]
        # Depth first and iterative (a long chain must not recurse): a step's mask is made
        # once all its dependencies' are; on a cycle, from what is known so far (a cycle is
        # an error of its own).
        entered: set[str] = set()
        stack: list[tuple[str, bool]] = [(step_id, False)]
        while stack:
            node, ready = stack.pop()
            if node in masks:
                continue
            if ready:
                mask = 0
                for dep in self._deps[node]:
                    mask |= self._bits[dep] | masks.get(dep, 0)
                masks[node] = mask & ~self._bits[node]
                continue
            entered.add(node)
            stack.append((node, True))
            stack.extend((dep, False) for dep in self._deps[node] if dep not in entered)
        return masks[step_id]

    def find_cycle(self) -> list[str] | None:
        """One cycle as the ids along it, first id repeated at the end, or None.

        The search starts from steps in file order, so the same pipeline always reports the
        same cycle: ``["a", "b", "c", "a"]`` for ``a -> b -> c -> a`` where each step depends on
        the next.
        """
        done: set[str] = set()
        for root in self._deps:
            if root in done:
                continue
            path: list[str] = []
            on_path: dict[str, int] = {}
            # Each frame is a step and an iterator over its remaining dependencies.
            stack: list[tuple[str, Iterator[str]]] = [(root, iter(self._deps[root]))]
            path.append(root)
            on_path[root] = 0
            while stack:
                node, remaining = stack[-1]
                nxt = next(remaining, None)
                if nxt is None:
                    stack.pop()
                    path.pop()
                    del on_path[node]
                    done.add(node)
                    continue
                if nxt in on_path:
                    return [*path[on_path[nxt] :], nxt]
                if nxt not in done:
                    on_path[nxt] = len(path)
                    path.append(nxt)
                    stack.append((nxt, iter(self._deps[nxt])))
        return None

    def find_cycles(self) -> list[list[str]]:
        """Cycles that share no step, each as `find_cycle` gives it; empty when acyclic.

        After each cycle is found its steps are set aside and the search runs again, so two
        separate loops in one pipeline are both reported.
        """
        cycles: list[list[str]] = []
        graph: StepGraph = self
        while (cycle := graph.find_cycle()) is not None:
            cycles.append(cycle)
            removed = set(cycle)
            graph = StepGraph(
                {
                    step_id: [dep for dep in deps if dep not in removed]
                    for step_id, deps in graph._deps.items()
                    if step_id not in removed
                }
            )
        return cycles

    def topological_order(self) -> list[str]:
        """Every step after its dependencies; among steps ready together, file order.

        Raises:
            PipelineValidationError: the graph has a cycle (the issue names it).
        """
        waiting = {step_id: len(deps) for step_id, deps in self._deps.items()}
        position = {step_id: index for index, step_id in enumerate(self._deps)}
        ready = [step_id for step_id, count in waiting.items() if count == 0]
        order: list[str] = []
        while ready:
            # Pick the earliest in the file: pipelines are short, so a sorted list beats a
            # heap for clarity at no measurable cost.
            ready.sort(key=position.__getitem__)
            current = ready.pop(0)
            order.append(current)
            for dependent in self._dependents[current]:
                waiting[dependent] -= 1
                if waiting[dependent] == 0:
                    ready.append(dependent)
        if len(order) < len(self._deps):
            raise PipelineValidationError([_cycle_issue(self.find_cycle() or [])])
        return order


def format_cycle(cycle: Sequence[str]) -> str:
    """A cycle as ``a -> b -> a``."""
    return " -> ".join(cycle)


def _cycle_issue(cycle: Sequence[str]) -> object:
    # Imported here: validation imports this module to ask its graph questions.
    from conveyor.pipeline.validation import ValidationIssue

    return ValidationIssue(
        "steps", f"dependency cycle: {format_cycle(cycle)} (each step depends on the next)"
    )


class Ancestry:
    """Which steps are upstream of one step: answers `step_id in ancestry`."""

    __slots__ = ("_bits", "_mask")

    def __init__(self, bits: Mapping[str, int], mask: int) -> None:
        self._bits = bits
        self._mask = mask

    def __contains__(self, step_id: object) -> bool:
        bit = self._bits.get(step_id) if isinstance(step_id, str) else None
        return bit is not None and bool(self._mask & bit)
