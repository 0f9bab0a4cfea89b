"""The sync plan: a pure function from (here, the remote's listing, the last sync) to actions.

For each session id, ``here`` changed if its state (bytes, file name, archived, names)
differs from the last sync's record, and ``there`` changed if the remote object's
version differs from the recorded one:

    here only, never synced or gone there    upload-new  (If-None-Match: *)
    here only, and synced, unchanged there   upload      (If-Match)  -- when changed here
    there only, never here                    download-new
    there only, synced and unchanged          left alone: deleted here (not brought back)
    changed here, not there                   upload      (If-Match on the recorded version)
    changed there, not here                   download    (not while a chat has it open)
    changed on both sides                     conflict    (compared; if they differ, both kept)

``--push`` keeps only uploads, ``--pull`` only downloads; conflicts need both ways.
The dry run prints exactly this plan; ``execute`` carries it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from taurus_ops.ops.sync.local import LocalEntry
from taurus_ops.remote.base import ObjectInfo

UPLOAD_NEW = "upload-new"
UPLOAD = "upload"
DOWNLOAD_NEW = "download-new"
DOWNLOAD = "download"
CONFLICT = "conflict"
BOTH, PUSH, PULL = "both", "push", "pull"
UPLOADS = (UPLOAD_NEW, UPLOAD)
DOWNLOADS = (DOWNLOAD_NEW, DOWNLOAD)


@dataclass(frozen=True)
class Action:
    kind: str
    id: str
    reason: str
    local: LocalEntry | None = None
    remote: ObjectInfo | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.kind,
            "id": self.id,
            "file": self.local.file if self.local else None,
            "path": self.local.path if self.local else None,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Skip:
    id: str
    why: str
    path: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "why": self.why, "path": self.path}


@dataclass
class Plan:
    direction: str
    actions: list[Action] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    unchanged: int = 0
    other_way: int = 0  # what the other direction would move (--push / --pull)
    forget: list[str] = field(default_factory=list)  # state records of sessions gone both sides

    def of(self, *kinds: str) -> list[Action]:
        return [a for a in self.actions if a.kind in kinds]

    def as_json(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "actions": [a.as_json() for a in self.actions],
            "skipped": [s.as_json() for s in self.skipped],
            "unchanged": self.unchanged,
            "otherDirection": self.other_way,
        }


def plan_sync(
    local: dict[str, LocalEntry],
    remote: dict[str, ObjectInfo],
    digests: dict[str, str | None],
    etags: dict[str, str | None],
    direction: str = BOTH,
) -> Plan:
    """The actions that bring here and the remote into step. Touches nothing.

    ``digests`` and ``etags`` are the last sync's record per id (None: never synced).
    """
    plan = Plan(direction)
    wanted = {
        BOTH: UPLOADS + DOWNLOADS + (CONFLICT,),
        PUSH: UPLOADS,
        PULL: DOWNLOADS,
    }[direction]
    for sid in sorted(set(local) | set(remote) | {k for k, v in etags.items() if v}):
        here, there = local.get(sid), remote.get(sid)
        known_digest, known_etag = digests.get(sid), etags.get(sid)
        action = _decide(sid, here, there, known_digest, known_etag)
        if action is None:
            if here is None and there is None:
                plan.forget.append(sid)
            elif here is None:
                plan.skipped.append(
                    Skip(sid, "deleted here since the last sync; left on the remote")
                )
            else:
                plan.unchanged += 1
            continue
        if isinstance(action, Skip):
            plan.skipped.append(action)
            continue
        if action.kind not in wanted:
            if action.kind == CONFLICT:
                plan.skipped.append(
                    Skip(
                        sid,
                        "changed here and on the remote: run `taurus-ops sync` (both ways) "
                        "to keep both",
                        here.path if here else None,
                    )
                )
            else:
                plan.other_way += 1
            continue
        plan.actions.append(action)
    return plan


def _decide(
    sid: str,
    here: LocalEntry | None,
    there: ObjectInfo | None,
    known_digest: str | None,
    known_etag: str | None,
) -> Action | Skip | None:
    if here is not None and there is None:
        if known_etag is None:
            return Action(UPLOAD_NEW, sid, "new here", here)
        return Action(UPLOAD_NEW, sid, "gone from the remote; uploaded again", here)
    if here is None and there is not None:
        if known_etag is not None and known_etag == there.etag:
            return None  # deleted here on purpose: not brought back unless it changes there
        return Action(DOWNLOAD_NEW, sid, "new on the remote", None, there)
    if here is None or there is None:
        return None
    changed_here = known_digest != here.digest
    changed_there = known_etag != there.etag
    if not changed_here and not changed_there:
        return None
    if changed_here and not changed_there:
        return Action(UPLOAD, sid, "changed here", here, there)
    if changed_there and not changed_here:
        if here.locked:
            return Skip(
                sid, "changed on the remote, but open in a chat here: left for later", here.path
            )
        return Action(DOWNLOAD, sid, "changed on the remote", here, there)
    why = (
        "here and on the remote, never synced from here: compared"
        if known_etag is None
        else "changed here and on the remote since the last sync"
    )
    return Action(CONFLICT, sid, why, here, there)


def plan_lines(plan: Plan) -> list[str]:
    out = []
    for action in plan.actions:
        where = f" ({action.local.file})" if action.local else ""
        out.append(f"{action.kind:<12} {action.id}{where}: {action.reason}")
    for skip in plan.skipped:
        out.append(f"{'skip':<12} {skip.id}: {skip.why}")
    return out
