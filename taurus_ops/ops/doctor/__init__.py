"""``taurus-ops doctor``: find every damaged session and repair it without losing a message.

    report = run_doctor(home, session_dir, archive_dir, fix=True)

checks.py scans (read-only), salvage.py recovers whole messages from damaged bytes,
document.py judges and repairs a parsed document, plan.py turns problems into a
plan (pure), repair.py carries it out (quarantine first), report.py explains.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from taurus_ops.ops.doctor.checks import Problem, Scan, scan_store
from taurus_ops.ops.doctor.plan import Plan, make_plan
from taurus_ops.ops.doctor.report import Report
from taurus_ops.ops.doctor.salvage import salvage


def run_doctor(
    home: Path,
    session_dir: Path,
    archive_dir: Path | None,
    only: Iterable[Path] | None = None,
    fix: bool = False,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
    config_files: Iterable[Path] = (),
    full: bool = False,
) -> Report:
    """Scan; with ``fix`` (and not ``dry_run``) repair under the maintenance lock.
    ``full`` hashes every file checkpoint as well."""
    from taurus_ops.store.lock import OpsLock

    if fix and not dry_run:
        with OpsLock(home):
            scan = scan_store(home, session_dir, archive_dir, only, progress, config_files, full)
            plan = make_plan(scan)
            from taurus_ops.ops.doctor.repair import Quarantine, apply_plan

            quarantine = Quarantine(home)
            apply_plan(plan, scan, quarantine)
            return Report(scan, plan, True, False, quarantine.folder if quarantine.used else None)
    scan = scan_store(home, session_dir, archive_dir, only, progress, config_files, full)
    return Report(scan, make_plan(scan), fix, dry_run)


__all__ = ["Plan", "Problem", "Report", "Scan", "make_plan", "run_doctor", "salvage", "scan_store"]
