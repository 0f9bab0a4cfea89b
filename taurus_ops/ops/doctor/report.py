"""The doctor's report: grouped by severity for people, one JSON object for scripts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taurus_ops.ops.doctor.checks import Problem, Scan
from taurus_ops.ops.doctor.document import ERROR, INFO, WARNING
from taurus_ops.ops.doctor.plan import Plan
from taurus_ops.words import plural

SEVERITIES = (ERROR, WARNING, INFO)
TITLES = {ERROR: "Errors", WARNING: "Warnings", INFO: "Notes"}
NOUNS = {ERROR: "error", WARNING: "warning", INFO: "note"}


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

    def tally(self) -> Tally:
        """Every count the report prints, taken from the one list it prints."""
        return Tally.of(self.problems)

    @property
    def exit_code(self) -> int:
        return 1 if self.remaining() else 0

    def as_json(self) -> dict[str, Any]:
        tally = self.tally()
        return {
            "checked": self.scan.checked,
            "sessionDirectory": str(self.scan.session_dir),
            "archiveDirectory": str(self.scan.archive_dir) if self.scan.archive_dir else None,
            "fix": self.fixing,
            "dryRun": self.dry_run,
            "healthy": not self.remaining(),
            "found": tally.found,
            "fixed": tally.fixed,
            "counts": dict(tally.by_severity),
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
        out.append(f"Checked {plural(scan.checked, 'session file')} in {where}.")
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
        """One closing line whose every number counts items of the list printed above it."""
        tally = self.tally()
        healthy = not self.remaining()
        kept = f" Originals are kept in {self.quarantine}." if self.quarantine else ""
        if self.fixing and not self.dry_run:
            line = f"Repaired {tally.fixed} of {plural(tally.found, 'problem')}"
            if tally.fixed == tally.found:
                line += f" ({tally.breakdown(tally.by_severity)})"
            else:
                line += (
                    f"; {tally.found - tally.fixed} not repaired "
                    f"({tally.breakdown(tally.not_fixed)})"
                )
            return line + ("; the store is healthy." if healthy else ".") + kept
        found = f"Found {plural(tally.found, 'problem')} ({tally.breakdown(tally.by_severity)})."
        if healthy:
            return f"{found} Nothing needs fixing."
        fixable = [p for p in self.remaining() if p.status == "found" and p.fix]
        tail = (
            "Nothing was changed (dry run)."
            if self.dry_run
            else "Run `taurus-ops doctor --fix` to repair (add --dry-run to see the plan only)."
            if fixable
            else "Nothing here that --fix can repair: see above what to do."
        )
        return f"{found} {tail}"


@dataclass
class Tally:
    """Counts over one list of problems: found, by severity, fixed, and what was not fixed."""

    found: int
    fixed: int
    by_severity: dict[str, int]
    not_fixed: dict[str, int]

    @classmethod
    def of(cls, problems: list[Problem]) -> Tally:
        by_severity = {s: sum(1 for p in problems if p.severity == s) for s in SEVERITIES}
        not_fixed = {
            s: sum(1 for p in problems if p.severity == s and p.status != "fixed")
            for s in SEVERITIES
        }
        fixed = sum(1 for p in problems if p.status == "fixed")
        return cls(len(problems), fixed, by_severity, not_fixed)

    @staticmethod
    def breakdown(counts: dict[str, int]) -> str:
        """``1 error, 2 notes``: only the severities that occur."""
        return ", ".join(plural(n, NOUNS[s]) for s, n in counts.items() if n)


def _short(path: Path, home: Path) -> str:
    try:
        relative = Path(path).relative_to(home)
    except ValueError:
        return str(path)
    return str(path) if relative == Path(".") else str(relative)
