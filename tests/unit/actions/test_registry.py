"""The registry holds definitions by type; discovery finds, loads and validates plugins."""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from conveyor.actions import (
    ActionContext,
    ActionDefinition,
    ActionMeta,
    ActionRegistry,
    ActionResult,
    BaseActionExecutor,
    DiscoveryReport,
    FailedPlugin,
    action,
    register_action,
)
from conveyor.errors import DuplicateActionError, InvalidActionError, UnknownActionError
from tests.support.distributions import write_distribution

GROUP = "conveyor.tests"
PYPROJECT = Path(__file__).parents[3] / "pyproject.toml"


def meta(action_type: str, category: str = "Testing", queue: str = "default") -> ActionMeta:
    return ActionMeta(
        type=action_type,
        version="1.0.0",
        name=action_type.title(),
        description=f"The {action_type} action",
        category=category,
        queue=queue,
    )


class NoopExecutor(BaseActionExecutor):
    async def execute(self, context: ActionContext) -> ActionResult:
        return ActionResult(success=True)


@register_action(meta("alpha", category="Control"))
class Alpha:
    executor_class = NoopExecutor


@register_action(meta("beta", queue="gpu"))
class Beta:
    executor_class = NoopExecutor


class Plain:
    """Not decorated: meta and executor_class are enough."""

    meta = meta("gamma", category="Control", queue="gpu")
    executor_class = NoopExecutor


class In(BaseModel):
    n: int = 1


class Out(BaseModel):
    n: int


@action(type="delta", description="Returns n", category="Math")
async def delta(data: In) -> Out:
    return Out(n=data.n)


# --- holding definitions --------------------------------------------------------------------


def test_add_accepts_every_kind_of_action() -> None:
    registry = ActionRegistry()
    direct = ActionDefinition(meta=meta("epsilon"), executor_class=NoopExecutor, source="mine")
    added = [registry.add(obj) for obj in (Alpha, Beta, Plain, delta, direct)]
    assert [d.type for d in added] == ["alpha", "beta", "gamma", "delta", "epsilon"]
    assert len(registry) == 5
    assert "delta" in registry
    assert "zeta" not in registry
    assert registry.get("epsilon") is direct


def test_sources_name_where_each_action_comes_from() -> None:
    registry = ActionRegistry([Alpha, Plain, delta])
    assert registry.get("alpha").source == f"{__name__}:Alpha"
    assert registry.get("gamma").source == f"{__name__}:Plain"
    assert registry.get("delta").source == f"{__name__}:delta"
    assert registry.add(Beta, source="somewhere").source == "somewhere"


def test_something_that_is_not_an_action_is_refused() -> None:
    registry = ActionRegistry()
    with pytest.raises(InvalidActionError, match="is not an action"):
        registry.add(object())
    assert len(registry) == 0


def test_a_duplicate_type_names_both_sources() -> None:
    registry = ActionRegistry([Alpha])
    twin = ActionDefinition(meta=meta("alpha"), executor_class=NoopExecutor, source="elsewhere")
    with pytest.raises(DuplicateActionError) as caught:
        registry.add(twin)
    error = caught.value
    assert (error.action_type, error.first, error.second) == (
        "alpha",
        f"{__name__}:Alpha",
        "elsewhere",
    )
    assert str(error) == (
        f"action type 'alpha' is registered twice: by {__name__}:Alpha and by elsewhere"
    )
    assert registry.get("alpha").source == f"{__name__}:Alpha"


def test_adding_the_same_action_twice_is_a_duplicate() -> None:
    registry = ActionRegistry([Alpha])
    with pytest.raises(DuplicateActionError):
        registry.add(Alpha)


@pytest.mark.parametrize(
    ("batch", "error"),
    [
        ([Beta, Alpha], DuplicateActionError),
        ([Beta, Beta], DuplicateActionError),
        ([Beta, "not an action"], InvalidActionError),
    ],
)
def test_add_many_adds_all_or_nothing(batch: list[object], error: type[Exception]) -> None:
    registry = ActionRegistry([Alpha])
    with pytest.raises(error):
        registry.add_many(batch)
    assert registry.types() == ["alpha"]


def test_add_many_returns_what_it_added() -> None:
    registry = ActionRegistry()
    assert [d.type for d in registry.add_many([Plain, Alpha])] == ["gamma", "alpha"]


def test_an_unknown_type_names_the_known_ones() -> None:
    registry = ActionRegistry([Beta, Alpha])
    with pytest.raises(UnknownActionError) as caught:
        registry.get("alhpa")
    assert caught.value.action_type == "alhpa"
    assert str(caught.value) == "unknown action type 'alhpa' (known: alpha, beta)"
    with pytest.raises(UnknownActionError, match=r"^unknown action type 'x'$"):
        ActionRegistry().get("x")


def test_listings_are_sorted() -> None:
    registry = ActionRegistry([delta, Plain, Beta, Alpha])
    assert registry.types() == ["alpha", "beta", "delta", "gamma"]
    assert [d.type for d in registry.list()] == ["alpha", "beta", "delta", "gamma"]
    assert [d.type for d in registry] == ["alpha", "beta", "delta", "gamma"]
    assert repr(registry) == "ActionRegistry(alpha, beta, delta, gamma)"


def test_by_category_groups_sorted_categories_and_types() -> None:
    grouped = ActionRegistry([delta, Plain, Beta, Alpha]).by_category()
    assert list(grouped) == ["Control", "Math", "Testing"]
    assert {c: [d.type for d in ds] for c, ds in grouped.items()} == {
        "Control": ["alpha", "gamma"],
        "Math": ["delta"],
        "Testing": ["beta"],
    }


def test_for_queue_is_a_new_registry_of_that_queue_only() -> None:
    registry = ActionRegistry([delta, Plain, Beta, Alpha])
    gpu = registry.for_queue("gpu")
    assert gpu is not registry
    assert gpu.types() == ["beta", "gamma"]
    assert registry.for_queue("default").types() == ["alpha", "delta"]
    assert len(registry.for_queue("tpu")) == 0
    assert len(registry) == 4


def test_registries_are_independent_objects() -> None:
    first, second = ActionRegistry([Alpha]), ActionRegistry()
    assert "alpha" not in second
    second.add(Alpha)
    assert first.get("alpha") == second.get("alpha")


# --- discovery ------------------------------------------------------------------------------

GOOD_MODULE = """
from pydantic import BaseModel

from conveyor.actions import (
    ActionContext, ActionMeta, ActionResult, BaseActionExecutor, action, register_action,
)


class Executor(BaseActionExecutor):
    async def execute(self, context: ActionContext) -> ActionResult:
        return ActionResult(success=True, outputs={"ok": True})


@register_action(ActionMeta(
    type="{prefix}_class", version="1.2.0", name="Class", description="A class action",
    category="Plugins",
))
class ClassAction:
    executor_class = Executor


class Data(BaseModel):
    text: str = "x"


@action(type="{prefix}_function", description="A function action", category="Plugins")
async def function_action(data: Data) -> Data:
    return data


not_an_action = 42
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh directory on sys.path; modules imported from it are forgotten afterwards."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(root)):
            del sys.modules[name]


def good_plugin(
    root: Path, package: str, prefix: str, module: str | None = None, **extra: str
) -> None:
    module = module or package.replace("-", "_")
    entry_points = {
        f"{prefix}_class": f"{module}:ClassAction",
        f"{prefix}_function": f"{module}:function_action",
        **extra,
    }
    write_distribution(
        root,
        package,
        version="0.3.0",
        entry_points=entry_points,
        modules={f"{module}/__init__.py": GOOD_MODULE.replace("{prefix}", prefix)},
        group=GROUP,
    )


def failure(report: DiscoveryReport, entry_name: str) -> FailedPlugin:
    [found] = [f for f in report.failed if f.entry_point.startswith(f"{entry_name} = ")]
    return found


def test_discovery_loads_class_and_function_actions_with_their_package(site: Path) -> None:
    good_plugin(site, "good-plugin", "good")
    registry = ActionRegistry()
    report = registry.discover(GROUP)
    assert report.ok
    assert report.failed == []
    assert sorted(d.type for d in report.loaded) == ["good_class", "good_function"]
    assert registry.types() == ["good_class", "good_function"]
    assert registry.get("good_class").source == (
        "good-plugin 0.3.0 (good_class = good_plugin:ClassAction)"
    )
    assert registry.get("good_function").meta.params[0].name == "text"


BROKEN_MODULES = {
    "broken_raises.py": "raise RuntimeError('cannot start: no GPU')\n",
    "broken_syntax.py": "def oops(:\n",
    "broken_imports.py": "import module_that_is_not_installed\n",
    "broken_exits.py": "import sys\nsys.exit(3)\n",
    "broken_declares.py": """
        from conveyor.actions import ActionMeta
        META = ActionMeta(type="Bad", version="1", name="B", description="d", category="c")
    """,
    "broken_shapes.py": "not_an_action = 42\n",
}


@pytest.mark.parametrize(
    ("entry_name", "target", "phase", "error", "message"),
    [
        ("raises", "broken_raises:X", "load", RuntimeError, "cannot start: no GPU"),
        ("syntax", "broken_syntax:X", "load", SyntaxError, "invalid syntax"),
        ("imports", "broken_imports:X", "load", ModuleNotFoundError, "module_that_is_not"),
        ("missing_module", "nowhere:X", "load", ModuleNotFoundError, "No module named 'nowhere'"),
        ("missing_attr", "broken_shapes:Missing", "load", AttributeError, "Missing"),
        ("exits", "broken_exits:X", "load", SystemExit, "3"),
        ("declares", "broken_declares:X", "load", InvalidActionError, "action 'Bad': type: "),
        ("shapes", "broken_shapes:not_an_action", "validate", InvalidActionError, "42 is not"),
    ],
)
def test_a_broken_plugin_is_reported_and_the_others_still_load(
    site: Path, entry_name: str, target: str, phase: str, error: type, message: str
) -> None:
    good_plugin(site, "good-plugin", "good")
    write_distribution(
        site,
        "broken-plugin",
        version="9.9.9",
        entry_points={entry_name: target},
        modules=BROKEN_MODULES,
        group=GROUP,
    )
    registry = ActionRegistry()
    report = registry.discover(GROUP)
    assert registry.types() == ["good_class", "good_function"]
    assert not report.ok
    failed = failure(report, entry_name)
    assert (failed.package, failed.version, failed.phase) == ("broken-plugin", "9.9.9", phase)
    assert failed.entry_point == f"{entry_name} = {target}"
    assert isinstance(failed.error, error)
    assert message in failed.message
    assert failed.message.startswith(f"{error.__name__}: ")
    assert registry.failures == [failed]


def test_a_duplicate_type_from_another_package_is_rejected_naming_both(site: Path) -> None:
    good_plugin(site, "zz-plugin", "same")
    good_plugin(site, "aa-plugin", "same")
    registry = ActionRegistry()
    report = registry.discover(GROUP)
    # The winner does not depend on sys.path order: packages are read in name order.
    assert registry.get("same_class").source.startswith("aa-plugin 0.3.0")
    assert {f.package for f in report.failed} == {"zz-plugin"}
    duplicate = failure(report, "same_class")
    assert duplicate.phase == "validate"
    assert isinstance(duplicate.error, DuplicateActionError)
    assert str(duplicate.error) == (
        "action type 'same_class' is registered twice: by aa-plugin 0.3.0 "
        "(same_class = aa_plugin:ClassAction) and by zz-plugin 0.3.0 "
        "(same_class = zz_plugin:ClassAction)"
    )


def test_conveyors_own_actions_win_over_a_plugin_declaring_the_same_type(site: Path) -> None:
    good_plugin(site, "aaa-plugin", "builtin")
    good_plugin(site, "conveyor", "builtin", module="fake_builtins")
    registry = ActionRegistry()
    report = registry.discover(GROUP)
    assert registry.get("builtin_class").source.startswith("conveyor 0.3.0")
    assert {f.package for f in report.failed} == {"aaa-plugin"}


def test_a_type_added_before_discovery_is_not_replaced(site: Path) -> None:
    good_plugin(site, "good-plugin", "good")
    mine = ActionDefinition(meta=meta("good_class"), executor_class=NoopExecutor, source="mine")
    registry = ActionRegistry([mine])
    report = registry.discover(GROUP)
    assert registry.get("good_class") is mine
    assert [d.type for d in report.loaded] == ["good_function"]
    assert "by mine and by good-plugin 0.3.0" in failure(report, "good_class").message


def test_discovering_again_skips_what_is_already_registered(site: Path) -> None:
    good_plugin(site, "good-plugin", "good", broken="nowhere:X")
    registry = ActionRegistry()
    first = registry.discover(GROUP)
    second = registry.discover(GROUP)
    assert len(first.loaded) == 2
    assert second.loaded == []
    assert [f.entry_point for f in second.failed] == ["broken = nowhere:X"]
    assert registry.last_discovery is second
    assert len(registry.failures) == 2


def test_a_distribution_on_the_path_twice_is_read_once(site: Path, tmp_path: Path) -> None:
    good_plugin(site, "good-plugin", "good")
    shadow = tmp_path / "shadow"
    write_distribution(
        shadow, "good-plugin", version="0.1.0", entry_points={"good_class": "x:Y"}, group=GROUP
    )
    sys.path.append(str(shadow))
    try:
        report = ActionRegistry().discover(GROUP)
    finally:
        sys.path.remove(str(shadow))
    assert report.ok
    assert len(report.loaded) == 2


def test_a_distribution_with_unreadable_metadata_is_reported(site: Path) -> None:
    good_plugin(site, "good-plugin", "good")
    dist_info = write_distribution(site, "garbled", entry_points={"x": "y:Z"}, group=GROUP)
    (dist_info / "METADATA").write_bytes(b"Name: \xff\xfe garbled\n")
    registry = ActionRegistry()
    report = registry.discover(GROUP)
    assert registry.types() == ["good_class", "good_function"]
    [failed] = report.failed
    assert failed.phase == "find"
    assert failed.entry_point == "<metadata>"
    assert str(dist_info) in failed.package
    assert isinstance(failed.error, UnicodeDecodeError)


def test_an_empty_group_gives_an_empty_report(site: Path) -> None:
    report = ActionRegistry().discover("conveyor.nothing_here")
    assert (report.loaded, report.failed, report.ok) == ([], [], True)
    assert report.summary() == (
        "0 action(s) loaded from entry-point group 'conveyor.nothing_here', 0 plugin(s) failed"
    )


def test_the_report_reads_well_and_serialises(site: Path) -> None:
    good_plugin(site, "good-plugin", "good", broken="nowhere:X")
    report = ActionRegistry().discover(GROUP)
    assert str(report) == report.summary()
    assert report.summary().splitlines() == [
        f"2 action(s) loaded from entry-point group {GROUP!r}, 1 plugin(s) failed",
        "loaded: good_class, good_function",
        "failed: good-plugin 0.3.0 [broken = nowhere:X]: "
        "ModuleNotFoundError: No module named 'nowhere'",
    ]
    data = report.to_dict()
    assert data["group"] == GROUP
    assert {
        "type": "good_class",
        "version": "1.2.0",
        "source": ("good-plugin 0.3.0 (good_class = good_plugin:ClassAction)"),
    } in data["loaded"]
    assert data["failed"] == [
        {
            "package": "good-plugin",
            "version": "0.3.0",
            "entry_point": "broken = nowhere:X",
            "phase": "load",
            "error": "ModuleNotFoundError: No module named 'nowhere'",
        }
    ]


def test_default_builds_a_new_registry_each_time(site: Path) -> None:
    good_plugin(site, "good-plugin", "good")
    first, second = ActionRegistry.default(GROUP), ActionRegistry.default(GROUP)
    assert first is not second
    assert first.types() == second.types() == ["good_class", "good_function"]
    assert first.last_discovery is not None
    assert first.failures == []
    assert ActionRegistry().last_discovery is None


def builtin_entry_points() -> dict[str, str]:
    with PYPROJECT.open("rb") as file:
        project = tomllib.load(file)["project"]
    entry_points: dict[str, str] = project["entry-points"]["conveyor.actions"]
    return entry_points


@pytest.mark.skipif(
    importlib.util.find_spec("conveyor.actions.builtin") is None,
    reason="the built-in actions are not written yet",
)
def test_every_builtin_declared_in_pyproject_is_discovered() -> None:
    registry = ActionRegistry.default()
    own_failures = [str(f) for f in registry.failures if f.package == "conveyor"]
    assert own_failures == []
    assert set(builtin_entry_points()) <= set(registry.types())
    for name in builtin_entry_points():
        assert registry.get(name).source.startswith("conveyor ")
