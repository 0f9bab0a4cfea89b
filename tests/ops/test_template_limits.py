"""User templates (export --template, session templates) stop at a time, output and memory
limit with one clear line: a runaway loop must not run for minutes or eat gigabytes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from helpers.sessions import make_document, write_session

from taurus_ops.ops import sandbox
from taurus_ops.ops.sandbox import Limits

SMALL = Limits(seconds=1.5, output=2_000_000, memory=96 << 20)

RUNAWAY = {
    "nested-loops-writing": (
        "{% for a in range(10**5) %}{% for b in range(10**5) %}x{% endfor %}{% endfor %}"
    ),
    "nested-loops-silent": (
        "{% for a in range(10**5) %}{% for b in range(10**5) %}{% endfor %}{% endfor %}"
    ),
    "wide-lines": (
        '{% for a in range(10**5) %}{% for b in range(10**5) %}{{ "x" * 5000 }}'
        "{% endfor %}{% endfor %}"
    ),
    "captured-block": (
        "{% set s %}{% for a in range(10**5) %}{% for b in range(10**5) %}"
        '{{ "x" * 10000 }}{% endfor %}{% endfor %}{% endset %}{{ s | length }}'
    ),
    "over-the-turns": (
        "{% for a in range(10**5) %}{% for t in turns %}{% for u in turns %}{{ t.role }}"
        "{% endfor %}{% endfor %}{% endfor %}"
    ),
    "joined-lists": (
        "{% for a in range(10**5) %}{{ (range(10**5) | list + range(10**5) | list) | length }}"
        "{% endfor %}"
    ),
    "huge-string": '{{ "x" * 10**6 * 10**6 }}',
    "huge-concat": '{{ ("x" * 9000000) + ("y" * 9000000) }}',
    "huge-range": "{% for a in range(10**6) %}{% for b in range(10**6) %}x{% endfor %}{% endfor %}",
    "recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
}


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> Limits:
    monkeypatch.setattr(sandbox, "LIMITS", SMALL)
    return SMALL


@pytest.mark.parametrize("source", RUNAWAY.values(), ids=RUNAWAY.keys())
def test_a_runaway_export_template_is_one_line(store, ops, tmp_path, small_limits, source) -> None:
    write_session(store.session_dir, make_document("abc123"))
    template = tmp_path / "runaway.md.j2"
    template.write_text(source)
    started = time.monotonic()
    result = ops("export", "abc123", "--template", str(template))
    took = time.monotonic() - started
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("Error: template error")
    assert "Traceback" not in result.output
    assert took < SMALL.seconds + 3, f"took {took:.1f} s"


def test_each_limit_says_which(store, tmp_path, small_limits) -> None:
    from taurus_ops.ops.export import render
    from taurus_ops.ops.sandbox import TemplateLimit

    session = store.load(write_session(store.session_dir, make_document("abc123")))
    expected = {
        "nested-loops-silent": "stopped after 1.5 s",
        "wide-lines": "its output passed 2,000,000 characters",
        "captured-block": "more than 96 MB of memory",
    }
    for key, words in expected.items():
        template = tmp_path / f"{key}.md.j2"
        template.write_text(RUNAWAY[key])
        with pytest.raises(TemplateLimit, match=words):
            render(session, template=template)


def test_a_template_within_the_limits_is_unchanged(store, tmp_path, small_limits) -> None:
    from taurus_ops.ops.export import render

    session = store.load(write_session(store.session_dir, make_document("abc123", n_turns=40)))
    template = tmp_path / "report.md.j2"
    template.write_text(
        "{% for t in turns %}{{ t.number }} {{ t.role }}\n{% endfor %}"
        '{{ "-" * 1000 }}\n{% for a in range(300) %}{% for b in range(300) %}.{% endfor %}{% endfor %}'
    )
    text = render(session, template=template).text
    assert text.count("\n") == 161 + 1 and text.endswith("." * 90000)


def test_the_timer_and_handler_are_put_back(store, tmp_path, small_limits) -> None:
    """The render's CPU timer (SIGPROF) is disarmed and the old handler restored; the
    wall-clock alarm (which pytest-timeout uses) is never touched."""
    from taurus_ops.ops.export import render

    session = store.load(write_session(store.session_dir, make_document("abc123")))
    template = tmp_path / "ok.md.j2"
    template.write_text("{{ session.id }}")
    before_alarm = signal.getitimer(signal.ITIMER_REAL)
    handler = signal.getsignal(signal.SIGPROF)
    assert render(session, template=template).text == "abc123"
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGPROF) is handler
    after_alarm = signal.getitimer(signal.ITIMER_REAL)
    assert (after_alarm[0] > 0) == (before_alarm[0] > 0)


def test_a_runaway_session_template_is_one_line(taurus_home, ops, small_limits) -> None:
    folder = taurus_home / "templates"
    folder.mkdir(parents=True)
    loop = RUNAWAY["captured-block"]
    (folder / "runaway.json").write_text(
        json.dumps({"messages": [{"role": "user", "content": loop}]})
    )
    started = time.monotonic()
    result = ops("template", "new", "runaway")
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "template 'runaway': stopped" in result.output
    assert time.monotonic() - started < SMALL.seconds + 3
    assert not list((taurus_home / "sessions").glob("*.json"))  # nothing was created


PEAK = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from taurus_ops.ops import sandbox
    from taurus_ops.ops.export import render
    from taurus_ops.store import SessionStore
    sandbox.LIMITS = sandbox.Limits(seconds=3, output=64_000_000, memory=128 << 20)
    store = SessionStore(Path(sys.argv[1]))
    session = store.load(store.files()[0])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        render(session, template=Path(sys.argv[2]))
    except sandbox.TemplateLimit as exc:
        print(exc, file=sys.stderr)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print((peak - base) * 1024)
    """
)


@pytest.mark.parametrize("key", ["captured-block", "wide-lines", "nested-loops-writing"])
def test_memory_stays_bounded(store, tmp_path, key) -> None:
    """Peak RSS of a real process rendering a runaway template: the memory limit (128 MB
    here) plus a generous margin, far from the gigabytes an unbounded render takes."""
    write_session(store.session_dir, make_document("abc123"))
    template = tmp_path / "runaway.md.j2"
    template.write_text(RUNAWAY[key])
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(store.session_dir), str(template)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "template error" in done.stderr and "stopped" in done.stderr
    growth = int(done.stdout.split()[-1])
    assert growth < (128 << 20) + (160 << 20), f"grew by {growth >> 20} MB"
