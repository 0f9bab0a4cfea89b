"""One conversation in two files: copies under different ids, and an id in two folders.

Two kinds of copy are found (read-only, like the rest of the scan):

* the same document under two ids: a document split off a damaged file twice (each
  file the doctor writes from another says so in ``recoveredFrom``), or a copy whose
  id was changed by hand. They are seen cheaply: files are grouped by
  (``created``, ``updated``, number of messages) and only a group of two or more is
  read again and compared, ids aside.
* a session id used both in the session directory (or the archive) and in one of its
  sub-folders, the tutorial's ``project-a/`` say, where a session was copied rather
  than moved.

The plan keeps the most complete copy and quarantines those it contains (their names
follow the one kept); copies that went their own ways are reported and left alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taurus_ops.ops.doctor.checks import RECOVERED_FROM, Problem, Scan, _digest, _parse
from taurus_ops.ops.doctor.document import INFO, WARNING, FileContext
from taurus_ops.store import format as fmt
from taurus_ops.words import plural

ID_FIELDS = ("sessionId", "previousSessionId", RECOVERED_FROM)


@dataclass
class Copies:
    """Files holding one conversation under different ids."""

    keep: Path
    drop: list[Path]  # copies whose messages the kept one holds: to the quarantine
    left: list[Path]  # copies that went on differently: left alone
    problem: Problem
    digests: dict[Path, str] = field(default_factory=dict)


@dataclass
class Elsewhere:
    """A session id in the session directory (or archive) and in a sub-folder of it."""

    file_id: str
    paths: list[Path]
    problem: Problem
    drop: Path | None = None  # a byte-identical copy at the top: to the quarantine
    keep: Path | None = None  # ... the copy in the sub-folder, which stays
    digest: str | None = None


def _read(path: Path) -> tuple[dict[str, Any], str] | None:
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    ok, data = _parse(raw)
    return (data, _digest(raw)) if ok and isinstance(data, dict) else None


def _without_ids(data: dict[str, Any]) -> bytes:
    return fmt.dumps({k: v for k, v in data.items() if k not in ID_FIELDS})


def _busy(scan: Scan) -> set[Path]:
    """Files another repair already acts on (damaged, or sharing one id)."""
    busy = set(scan.files)
    for _file_id, paths, _problem in scan.duplicates:
        busy.update(paths)
    return busy


def find_copies(scan: Scan, wanted: set[str] | None) -> None:
    """Report each set of files holding one split-off document under different ids.

    Files the doctor wrote say where they came from (``recoveredFrom``): two with the same
    origin are the same document written twice, a warning that ``--fix`` resolves. Files
    written before that field existed are matched by content: the same document, ids
    aside, each named after its own ``created`` day and chained by ``previousSessionId``
    as the doctor names what it splits off. That is only noted: a copy made on purpose
    looks the same.
    """
    busy = _busy(scan)
    marked: list[set[Path]] = []
    for paths in scan.recovered.values():  # written twice from one damaged file
        group = {p for p in paths if p not in busy}
        if len(group) > 1:
            marked.append(group)
    seen: set[Path] = set().union(*marked) if marked else set()
    unmarked: list[set[Path]] = []
    for paths in scan.signatures.values():  # the same document, ids aside
        free = [p for p in paths if p not in busy and p not in seen]
        if len(free) < 2:
            continue
        by_body: dict[bytes, dict[Path, dict[str, Any]]] = {}
        for path in free:
            read = _read(path)
            if read is not None:
                by_body.setdefault(_without_ids(read[0]), {})[path] = read[0]
        unmarked += [set(g) for g in by_body.values() if len(g) > 1 and _split_off(g)]
    groups = [(g, True) for g in _merge(marked)] + [(g, False) for g in unmarked]
    for group, certain in groups:
        ids = {FileContext.of(p.name, 0).file_id for p in group}
        if len(ids) < len(group):
            continue
        if wanted is not None and not any(os.path.realpath(p) in wanted for p in group):
            continue
        _report_copies(scan, sorted(group), certain)


def _split_off(docs: dict[Path, dict[str, Any]]) -> bool:
    """True if these files look like one document the doctor split off more than once."""
    ids = {d.get("sessionId") for d in docs.values()}
    chained = any(d.get("previousSessionId") in ids for d in docs.values())
    named = all(
        (parts := fmt.split_file_name(p.name)) is not None
        and str(d.get("created", "")).startswith(parts[0])
        for p, d in docs.items()
    )
    return chained and named


def _merge(groups: list[set[Path]]) -> list[set[Path]]:
    merged: list[set[Path]] = []
    for group in groups:
        overlapping = [m for m in merged if m & group]
        for m in overlapping:
            merged.remove(m)
            group = group | m
        merged.append(group)
    return merged


def _report_copies(scan: Scan, paths: list[Path], certain: bool) -> None:
    docs: dict[Path, dict[str, Any]] = {}
    for path in paths:
        read = _read(path)
        if read is not None:
            docs[path], scan.digests[path] = read
    if len(docs) < 2:
        return

    def rank(p: Path) -> tuple[int, int, float, str]:
        messages = docs[p].get("messages")
        count = len(messages) if isinstance(messages, list) else 0
        archived = 1 if scan.archive_dir is not None and p.parent == scan.archive_dir else 0
        try:
            mtime = p.stat().st_mtime
        except OSError:
            mtime = 0.0
        return (-count, archived, mtime, p.name)  # most messages, active, oldest file first

    ordered = sorted(docs, key=rank)
    keep = ordered[0]
    kept = docs[keep].get("messages") or []
    drop: list[Path] = []
    left: list[Path] = []
    for other in ordered[1:]:
        messages = docs[other].get("messages") or []
        (drop if kept[: len(messages)] == messages else left).append(other)
    origins = {str(docs[p].get(RECOVERED_FROM, {}).get("file", "")) for p in docs}
    origins.discard("")
    origin = f", split off {next(iter(origins))} more than once" if len(origins) == 1 else ""
    ids = ", ".join(FileContext.of(p.name, 0).file_id for p in ordered)
    fix = ""
    if drop and certain:
        fix = (
            f"keep {keep.name}; move {', '.join(p.name for p in drop)} to the quarantine "
            f"(its names follow {keep.name})"
        )
        if left:
            fix += f"; {', '.join(p.name for p in left)} went on differently: left as it is"
    text = f"{plural(len(docs), 'file')} hold the same conversation under the ids {ids}{origin}"
    if not certain:
        text += " (as when the doctor once split a document off twice, or a copy made on purpose)"
    problem = scan.add(
        Problem(
            ", ".join(str(p) for p in ordered),
            "same-conversation",
            WARNING if certain else INFO,
            text,
            fix,
        )
    )
    if not fix:
        problem.status = "manual"
        problem.outcome = (
            "they went on differently since; keep the one you want (`taurus-ops show` them)"
            if certain
            else "if one is a copy you do not want, remove it (`taurus-ops show ID` to compare)"
        )
    scan.copies.append(Copies(keep, drop, left, problem, {p: scan.digests[p] for p in docs}))


def find_elsewhere(
    scan: Scan, subfolders: list[Path], by_id: dict[str, list[Path]], wanted: set[str] | None
) -> None:
    """Report each id used at the top of the store and in one of its sub-folders."""
    in_sub: dict[str, list[Path]] = {}
    for folder in subfolders:
        if any(
            f is not None and os.path.realpath(folder) == os.path.realpath(f)
            for f in (scan.archive_dir, scan.home / "quarantine")
        ):
            continue
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if name.endswith(".json") and not name.startswith(".") and not entry.is_symlink():
                file_id = FileContext.of(name, 0).file_id
                in_sub.setdefault(file_id, []).append(Path(entry.path))
    scan.ids |= set(in_sub)  # a new id must not clash with a project's session either
    busy = _busy(scan) | {p for c in scan.copies for p in [c.keep, *c.drop, *c.left]}
    for file_id, sub_paths in sorted(in_sub.items()):
        top = sorted(by_id.get(file_id, []))
        if not top:
            continue
        if wanted is not None and not any(os.path.realpath(p) in wanted for p in top):
            continue
        paths = top + sorted(sub_paths)
        where = ", ".join(sorted({str(p.parent.relative_to(scan.session_dir)) for p in sub_paths}))
        problem = Problem(
            ", ".join(str(p) for p in paths),
            "id-elsewhere",
            WARNING,
            f"the id {file_id!r} is used here and in the sub-folder {where} too",
        )
        item = Elsewhere(file_id, paths, scan.add(problem))
        same = _identical(top[0], sub_paths[0]) if len(top) == 1 == len(sub_paths) else None
        if same is not None and top[0] not in busy:
            item.drop, item.keep, item.digest = top[0], sub_paths[0], same
            item.problem.fix = (
                f"{top[0].name} is a byte-identical copy of the one in {where}: move it to "
                "the quarantine (names follow the copy in the sub-folder)"
            )
        else:
            item.problem.status = "manual"
            item.problem.outcome = (
                "both are kept (they differ); keep one, e.g. move the other out of "
                f"{scan.session_dir}"
            )
        scan.elsewhere.append(item)


def _identical(a: Path, b: Path) -> str | None:
    """The sha256 both files share, or None when they differ (or cannot be read)."""
    try:
        raw = a.read_bytes()
        same = raw == b.read_bytes()
    except OSError:
        return None
    return _digest(raw) if same else None
