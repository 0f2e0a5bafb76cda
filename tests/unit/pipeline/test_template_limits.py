"""Every template evaluation is bounded: each limit refuses before it computes, naming itself."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from conveyor.actions import ActionRegistry
from conveyor.errors import TemplateLimitError
from conveyor.pipeline.template_limits import (
    TemplateLimits,
    configure_template_limits,
    template_limits,
)
from conveyor.pipeline.templating import render_value
from conveyor.pipeline.validation import validate_pipeline


@pytest.fixture
def limits() -> Iterator[None]:
    before = template_limits()
    yield
    configure_template_limits(before)


@pytest.mark.parametrize(
    ("template", "limit", "said"),
    [
        ("{{ 'a' * 10**9 }}", "template_max_output_chars", "1,000,000,000 long"),
        ("{{ [1] * 10**7 }}", "template_max_output_chars", "10,000,000 long"),
        ("{{ 10**(10**7) > 5 }}", "template_max_integer_digits", "12,041,201 digits"),
        ("{{ (10**4000) * (10**4000) }}", "template_max_integer_digits", "digits"),
        ("{{ '%999999999d' % 1 }}", "template_max_output_chars", "formatted text"),
        ("{{ 'a'|center(10**9) }}", "template_max_output_chars", "center"),
        ("{{ 'a'.ljust(10**9) }}", "template_max_output_chars", "ljust"),
        ("{{ ('a'*1000)|replace('a', 'b'*10000) }}", "template_max_output_chars", "replace"),
        ("{{ range(100)|join('x'*100000) }}", "template_max_output_chars", "joined"),
        ("{% for i in range(10**6) %}{% endfor %}", "template_max_range", "1,000,000 items"),
        (
            "{% for i in range(10000) %}{% for j in range(300) %}{% endfor %}{% endfor %}",
            "template_max_loop_iterations",
            "too many iterations",
        ),
        (
            "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
            "template_max_call_depth",
            "51 deep",
        ),
        ("{{ " + "(" * 200 + "1" + ")" * 200 + " }}", "template_max_nesting", "201 deep"),
    ],
)
def test_each_limit_refuses_before_computing(template: str, limit: str, said: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateLimitError) as caught:
        render_value(template, {})
    assert caught.value.limit == limit
    assert limit in str(caught.value) and said in str(caught.value)
    assert time.monotonic() - started < 5  # Generous; it once took minutes and gigabytes.


def test_the_time_bound_stops_an_evaluation(limits: None) -> None:
    configure_template_limits(TemplateLimits(timeout_seconds=0.05, max_loop_iterations=10**9))
    slow = "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateLimitError, match="template_timeout_seconds"):
        render_value(slow, {})


def test_limits_are_settings(limits: None) -> None:
    configure_template_limits(TemplateLimits(max_range=5))
    assert render_value("{{ range(5)|list }}", {}) == [0, 1, 2, 3, 4]
    with pytest.raises(TemplateLimitError, match=r"template_max_range \(5\)"):
        render_value("{{ range(6)|list }}", {})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ 2**10 }}", 1024),
        ("x{{ 3*4 }}y", "x12y"),
        ("{% for x in [1,2,3] %}{{ loop.index }}{% endfor %}", "123"),
        ("{{ '%s-%d' % ('a', 3) }}", "a-3"),
        ("{{ [1,2] + [3] }}", [1, 2, 3]),
        ("{{ 'ab' * 3 }}", "ababab"),
        ("{{ 'a'|center(5) }}", "  a  "),
        ("{{ 'x,y'.split(',') | join('-') }}", "x-y"),
        ("{{ 'a b'.replace(' ', '_') }}", "a_b"),
    ],
)
def test_ordinary_templates_are_untouched(template: str, expected: object) -> None:
    assert render_value(template, {}) == expected


def test_validation_never_evaluates_costly_arithmetic() -> None:
    document = {
        "name": "p",
        "steps": [{"id": "a", "action": "log", "params": {"message": "{{ 'a' * 10**9 }}"}}],
    }
    started = time.monotonic()
    assert validate_pipeline(document, ActionRegistry.default()).ok
    assert time.monotonic() - started < 5
