"""``taurus-ops doctor``: find every damaged session and repair it without losing a message.

    report = run(ctx, DoctorRequest(fix=True))

checks.py scans (read-only), salvage.py recovers whole messages from damaged bytes,
document.py judges and repairs a parsed document, plan.py turns problems into a
plan (pure), repair.py carries it out (quarantine first), report.py explains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from taurus_ops.ops.doctor.checks import Problem, Scan, scan_store
from taurus_ops.ops.doctor.plan import Plan, make_plan
from taurus_ops.ops.doctor.report import Report
from taurus_ops.ops.doctor.salvage import salvage

if TYPE_CHECKING:
    from taurus_ops.errors import ConfigError
    from taurus_ops.ops.context import JobContext
    from taurus_ops.store.store import SessionStore

DoctorResult = Report  # the doctor's result is its report: found, planned, fixed


@dataclass(frozen=True)
class DoctorRequest:
    refs: tuple[str, ...] = ()  # only these sessions (default: the whole store)
    fix: bool = False
    dry_run: bool = False  # with ``fix``: plan the repairs, change nothing
    wait: float = 0.0  # seconds a fix waits for another maintenance job to finish
    config_files: tuple[Path, ...] = ()  # checked besides those the settings came from
    notes: tuple[str, ...] = ()  # lines the report leads with (settings that were unreadable)
    progress: Callable[[int, int], None] | None = None  # (files checked, files in all)
    full: bool = False  # read every file, also those unchanged since found healthy


def run(ctx: JobContext, request: DoctorRequest) -> DoctorResult:
    """Scan the store (or ``request.refs``); with ``fix`` (and not ``dry_run``) repair what
    was found under the ops lock. A cleanup about to remove sessions is a warning."""
    if request.full:
        from taurus_ops.ops.doctor.checks import forget_healthy

        forget_healthy(ctx.home)
    only = _resolve(ctx.store, request.refs)
    warning = _cleanup_warning(ctx) if not request.notes else None
    config = ctx.config
    files = [*config.files, *request.config_files]

    def scan() -> Scan:
        return scan_store(
            ctx.home,
            config.session_dir,
            config.archive_dir,
            only,
            request.progress,
            files,
            full=request.full,
        )

    if request.fix and not request.dry_run:
        from taurus_ops.ops.doctor.repair import Quarantine, apply_plan
        from taurus_ops.ops.lock import ops_lock

        with ops_lock(ctx, request.wait):
            found = scan()
            plan = make_plan(found)
            quarantine = Quarantine(ctx.home)
            apply_plan(plan, found, quarantine)
            report = Report(
                found, plan, True, False, quarantine.folder if quarantine.used else None
            )
    else:
        found = scan()
        report = Report(found, make_plan(found), request.fix, request.dry_run)
    report.warnings[:0] = [*request.notes, *([warning] if warning else [])]
    return report


def _resolve(store: SessionStore, refs: tuple[str, ...]) -> list[Path] | None:
    if not refs:
        return None
    from taurus_ops.errors import SessionNotFound, UsageError

    paths = []
    for ref in refs:
        try:
            paths.append(store.resolve(ref).path)
        except SessionNotFound as exc:
            raise UsageError(str(exc)) from None
    return paths


def _cleanup_warning(ctx: JobContext) -> str | None:
    try:
        from taurus_ops.ops import cleanup
    except ImportError:
        return None
    try:
        return cleanup.pending_warning(ctx.config, ctx.store)
    except Exception:  # a warning must never stop the doctor
        return None


def fallback_context(session_dir: Path | None, error: ConfigError) -> tuple[JobContext, str]:
    """The built-in settings (and ``session_dir``), for a doctor run whose configuration
    file cannot be read (the doctor reports that file); with the note that says so."""
    from taurus_ops.config.paths import expand_path
    from taurus_ops.config.settings import Config, Settings
    from taurus_ops.ops.context import JobContext

    values = {} if session_dir is None else {"sessionDirectory": expand_path(str(session_dir))}
    config = Config(settings=Settings.model_validate(values))
    note = f"a configuration file could not be read ({error.source}); using the default settings"
    return JobContext.of(config), note


__all__ = [
    "DoctorRequest",
    "DoctorResult",
    "Plan",
    "Problem",
    "Report",
    "Scan",
    "fallback_context",
    "make_plan",
    "run",
    "salvage",
    "scan_store",
]
