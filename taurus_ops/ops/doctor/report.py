"""The doctor's report: grouped by severity for people, one JSON object for scripts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taurus_ops.ops.doctor.checks import Problem, Scan
from taurus_ops.ops.doctor.document import ERROR, INFO, WARNING
from taurus_ops.ops.doctor.plan import Plan

SEVERITIES = (ERROR, WARNING, INFO)
TITLES = {ERROR: "Errors", WARNING: "Warnings", INFO: "Notes"}


@dataclass
class Report:
    scan: Scan
    plan: Plan | None
    fixing: bool
    dry_run: bool
    quarantine: Path | None = None  # the day's quarantine folder, when anything went there
    warnings: list[str] = field(default_factory=list)  # extra lines (e.g. a cleanup warning)

    @property
    def problems(self) -> list[Problem]:
        return self.scan.problems

    def remaining(self) -> list[Problem]:
        """Problems (not notes) still there: not fixed, or only found."""
        return [p for p in self.problems if p.severity != INFO and p.status != "fixed"]

    @property
    def exit_code(self) -> int:
        return 1 if self.remaining() else 0

    def as_json(self) -> dict[str, Any]:
        counts = {s: sum(1 for p in self.problems if p.severity == s) for s in SEVERITIES}
        return {
            "checked": self.scan.checked,
            "sessionDirectory": str(self.scan.session_dir),
            "archiveDirectory": str(self.scan.archive_dir) if self.scan.archive_dir else None,
            "fix": self.fixing,
            "dryRun": self.dry_run,
            "healthy": not self.remaining(),
            "counts": counts,
            "remaining": len(self.remaining()),
            "problems": [p.as_json() for p in self.problems],
            "plan": [a.as_json() for a in self.plan.ordered()] if self.plan else [],
            "quarantine": str(self.quarantine) if self.quarantine else None,
            "warnings": self.warnings,
            "exitStatus": self.exit_code,
        }

    def lines(self) -> list[str]:
        scan = self.scan
        out: list[str] = []
        where = str(_short(scan.session_dir, scan.home))
        if scan.archive_dir is not None:
            where += f" and {_short(scan.archive_dir, scan.home)}"
        out.append(f"Checked {scan.checked} session file(s) in {where}.")
        for warning in self.warnings:
            out.append(f"warning: {warning}")
        if not self.problems:
            out.append("Healthy: no problems found.")
            return out
        for severity in SEVERITIES:
            group = sorted(
                (p for p in self.problems if p.severity == severity), key=lambda p: p.path
            )
            if not group:
                continue
            out.append("")
            out.append(f"{TITLES[severity]} ({len(group)}):")
            for p in group:
                shown = ", ".join(_short(Path(x), scan.home) for x in p.path.split(", "))
                out.append(f"  {shown}: {p.text}")
                out.append(f"      {self._what(p)}")
        out.append("")
        out.append(self.summary())
        return out

    def _what(self, p: Problem) -> str:
        if p.status == "fixed":
            return f"fixed: {p.outcome}"
        if p.status in ("skipped", "failed"):
            return f"{p.status}: {p.outcome}"
        if p.status == "manual":
            return f"not fixed automatically: {p.outcome}"
        if not p.fix:
            return "nothing to do" if p.severity == INFO else "no automatic fix"
        if self.fixing:  # a dry run of --fix
            return f"--fix would: {p.fix}"
        return f"--fix: {p.fix}"

    def summary(self) -> str:
        remaining = self.remaining()
        fixed = [p for p in self.problems if p.status == "fixed"]
        errors = sum(1 for p in remaining if p.severity == ERROR)
        warnings = sum(1 for p in remaining if p.severity == WARNING)
        kept = f" Originals are kept in {self.quarantine}." if self.quarantine else ""
        if self.fixing and not self.dry_run:
            if not remaining:
                return f"Repaired {len(fixed)} problem(s); the store is healthy.{kept}"
            return (
                f"Repaired {len(fixed)} problem(s); {len(remaining)} remain "
                f"({errors} error(s), {warnings} warning(s)).{kept}"
            )
        if not remaining:
            return "No problems that need fixing."
        tail = (
            "Nothing was changed (dry run)."
            if self.dry_run
            else "Run `taurus-ops doctor --fix` to repair (add --dry-run to see the plan only)."
        )
        return f"{len(remaining)} problem(s): {errors} error(s), {warnings} warning(s). {tail}"


def _short(path: Path, home: Path) -> str:
    try:
        relative = Path(path).relative_to(home)
    except ValueError:
        return str(path)
    return str(path) if relative == Path(".") else str(relative)
