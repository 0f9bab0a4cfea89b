"""The scheduler daemon: ``taurus-ops schedule run`` (APScheduler 3.x, BlockingScheduler).

Cleanup and backup run on the cron expressions ``schedule.cleanup`` and
``schedule.backup``, and sync on ``schedule.sync`` when it is set (off by default). Jobs live in an SQLite job store (``~/.taurus/schedule.sqlite``),
so a run missed while the machine slept or the daemon was stopped happens once
(coalesced) when it is back. One worker thread runs one job at a time; each job
takes the ops lock, waiting for a cleanup, backup or doctor started elsewhere (a
systemd timer, a user) to finish. SIGTERM or SIGINT lets the running job finish,
then the daemon exits 0. Everything is logged to ``~/.taurus/logs/taurus-ops.log``.

APScheduler is imported only here, when the daemon or ``schedule show`` runs.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taurus_ops.config.cron import WEEKDAYS, Cron, parse_cron
from taurus_ops.errors import OpsLocked, TaurusError
from taurus_ops.store.lock import HomeLock
from taurus_ops.words import plural

if TYPE_CHECKING:
    from taurus_ops.ops.context import JobContext

JOB_KINDS = ("cleanup", "backup", "sync")  # sync only when schedule.sync is set
JOB_FUNC = "taurus_ops.ops.schedule:run_job"
DB_NAME = "schedule.sqlite"
PID_LOCK = "schedule.lock"
LOCK_WAIT = 1800.0  # seconds a scheduled job waits for another maintenance job
LOGGER = "taurus_ops.ops.schedule"

STOPPING = threading.Event()  # set when the daemon was asked to stop


class DaemonRunning(TaurusError):
    """Another ``schedule run`` already serves this Taurus home."""


class DaemonLock(HomeLock):
    """Held by the running ``schedule run``: one scheduler per Taurus home."""

    def __init__(self, home: Path) -> None:
        where = Path(home)
        super().__init__(
            where,
            PID_LOCK,
            lambda holder: DaemonRunning(
                f"the scheduler is already running for {where} ({holder})"
            ),
        )


def db_url(home: Path) -> str:
    return f"sqlite:///{Path(home) / DB_NAME}"


def make_trigger(expression: str, timezone: Any = None) -> Any:
    """An APScheduler CronTrigger for one of our cron expressions (checked by parse_cron).

    Weekday numbers are passed as names: APScheduler 3 counts Monday as 0, cron Sunday.
    """
    from apscheduler.triggers.cron import CronTrigger

    cron = parse_cron(expression)
    fields: dict[str, str] = {
        "second": cron.second,
        "minute": cron.minute,
        "hour": cron.hour,
        "day": cron.day,
        "month": cron.month,
    }
    if not cron.is_star("day_of_week"):
        fields["day_of_week"] = ",".join(WEEKDAYS[d] for d in cron.values["day_of_week"])
    fields = {k: ("*" if v == "?" else v) for k, v in fields.items()}
    return CronTrigger(timezone=timezone, **fields)


def job_kwargs(kind: str, config_file: str | None, session_dir: str | None) -> dict[str, Any]:
    return {"kind": kind, "config_file": config_file, "session_dir": session_dir}


# -- the jobs ---------------------------------------------------------------------------------
def run_job(
    kind: str,
    config_file: str | None = None,
    session_dir: str | None = None,
    lock_wait: float = LOCK_WAIT,
) -> str:
    """One scheduled cleanup, backup or sync. Reads the settings afresh; never raises.

    Each job waits up to ``lock_wait`` seconds for the ops lock (giving up early when
    the daemon is stopping) and is the very job the command line runs."""
    from taurus_ops.ops.context import JobContext

    try:
        ctx = JobContext.load(Path(config_file) if config_file else None, session_dir, STOPPING)
    except TaurusError as exc:
        logging.getLogger(LOGGER).error("%s: settings unreadable, job skipped: %s", kind, exc)
        return "error"
    log = ctx.log("schedule")
    log.info("%s: scheduled run starting", kind)
    try:
        if kind == "cleanup":
            outcome = _cleanup(ctx, lock_wait)
        elif kind == "backup":
            outcome = _backup(ctx, lock_wait)
        elif kind == "sync":
            outcome = _sync(ctx, lock_wait)
        else:
            raise TaurusError(f"unknown job {kind!r}")
    except OpsLocked as exc:
        log.warning("%s: skipped: %s", kind, exc)
        return "skipped"
    except (TaurusError, OSError) as exc:
        log.error("%s: failed: %s", kind, exc)
        return "error"
    except Exception:  # a job must never take the daemon down
        log.exception("%s: failed unexpectedly", kind)
        return "error"
    log.info("%s: scheduled run finished: %s", kind, outcome)
    return "ok"


def _cleanup(ctx: JobContext, wait: float) -> str:
    from taurus_ops.ops import cleanup

    return cleanup.run(ctx, cleanup.CleanupRequest(wait=wait)).summary()


def _backup(ctx: JobContext, wait: float) -> str:
    from taurus_ops.ops.backup import create

    result = create.run(ctx, create.CreateRequest(wait=wait))
    if not result.ok:
        raise TaurusError(result.error)
    return result.summary()


def _sync(ctx: JobContext, wait: float) -> str:
    if not ctx.config.settings.remote.url:
        return "no remote.url is configured, nothing to do"
    from taurus_ops.ops import sync

    result = sync.run(ctx, sync.SyncRequest(wait=wait))
    if result.stopped:
        raise TaurusError(result.stopped)
    return result.outcome()


def _scheduled(config: Any) -> list[str]:
    return [kind for kind in JOB_KINDS if getattr(config.settings.schedule, kind, None)]


def _drop_stored(home: Path, scheduler: Any, kinds: list[str]) -> None:
    """Remove stored jobs whose schedule was turned off (schedule.sync set back to null)."""
    store = _job_store(home)
    store.start(scheduler, "default")
    try:
        for kind in kinds:
            store.remove_job(kind)
    finally:
        store.shutdown()


# -- the daemon -------------------------------------------------------------------------------
def _job_store(home: Path) -> Any:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    from taurus_ops.store.atomic import remove_foreign

    for suffix in ("", "-journal", "-wal", "-shm"):  # a link planted there: never through it
        remove_foreign(Path(home) / f"{DB_NAME}{suffix}")
    return SQLAlchemyJobStore(url=db_url(home))


def stored_jobs(home: Path, scheduler: Any = None) -> dict[str, Any]:
    """The jobs saved in the job store (id -> Job), without running a scheduler."""
    if not (Path(home) / DB_NAME).exists():
        return {}
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = scheduler or BackgroundScheduler()
    store = _job_store(home)
    store.start(scheduler, "default")
    try:
        return {job.id: job for job in store.get_all_jobs()}
    finally:
        store.shutdown()


def build_scheduler(
    config: Any,
    config_file: str | None = None,
    session_dir: str | None = None,
    scheduler_cls: Any = None,
) -> tuple[Any, list[str]]:
    """A scheduler with both jobs, keeping stored jobs (and their missed runs) whose
    schedule is unchanged. Returns (scheduler, notes to log)."""
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.blocking import BlockingScheduler

    home = Path(config.home)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    scheduler = (scheduler_cls or BlockingScheduler)(
        jobstores={"default": _job_store(home)},
        executors={"default": ThreadPoolExecutor(max_workers=1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    existing = stored_jobs(home, scheduler)
    notes = []
    now = datetime.now(UTC)
    off = [kind for kind in JOB_KINDS if kind not in _scheduled(config) and kind in existing]
    if off:
        _drop_stored(home, scheduler, off)
        notes += [f"{kind}: schedule turned off" for kind in off]
    for kind in _scheduled(config):
        expression = getattr(config.settings.schedule, kind)
        trigger = make_trigger(expression, scheduler.timezone)
        kwargs = job_kwargs(kind, config_file, session_dir)
        job = existing.get(kind)
        extra: dict[str, Any] = {}
        if (
            job is not None
            and str(job.trigger) == str(trigger)
            and job.func_ref == JOB_FUNC
            and job.kwargs == kwargs
            and job.next_run_time is not None
        ):
            # the same schedule: keep its saved next run, so runs missed meanwhile happen
            # (once: the job is re-added with coalescing whatever the store held)
            extra["next_run_time"] = job.next_run_time
            missed = job._get_run_times(now)
            if missed:
                notes.append(
                    f"{kind}: {plural(len(missed), 'run')} missed while "
                    "the scheduler was not running; running once now (coalesced)"
                )
        elif job is not None:
            notes.append(f"{kind}: schedule changed to {expression!r}")
        scheduler.add_job(
            JOB_FUNC,
            trigger=trigger,
            id=kind,
            name=f"taurus-ops {kind}",
            kwargs=kwargs,
            replace_existing=True,
            **extra,
        )
    return scheduler, notes


def run_daemon(config: Any, config_file: str | None = None, session_dir: str | None = None) -> int:
    """Run the scheduler in the foreground until SIGTERM or SIGINT; returns the exit status."""
    from taurus_ops.ops.log import ops_logger

    os.umask(0o077)
    log = ops_logger(config.home, LOGGER)
    aps_log = logging.getLogger("apscheduler")
    aps_log.setLevel(logging.INFO)
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)  # our jobs log runs
    for handler in logging.getLogger("taurus_ops.ops").handlers:
        if handler not in aps_log.handlers:
            aps_log.addHandler(handler)
    pid_lock = DaemonLock(config.home)
    pid_lock.acquire()
    STOPPING.clear()
    try:
        scheduler, notes = build_scheduler(config, config_file, session_dir)
        stopper: list[threading.Thread] = []

        def stop(signum: int, _frame: Any) -> None:
            name = signal.Signals(signum).name
            if stopper:
                log.info("%s again: already stopping", name)
                return
            log.info("%s: stopping after the running job (if any)", name)
            STOPPING.set()
            thread = threading.Thread(target=_shutdown, args=(scheduler,), daemon=True)
            stopper.append(thread)
            thread.start()

        old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            log.info(
                "scheduler started (pid %d): %s; job store %s",
                os.getpid(),
                ", ".join(
                    f"{k} {getattr(config.settings.schedule, k)!r}" for k in _scheduled(config)
                ),
                Path(config.home) / DB_NAME,
            )
            for note in notes:
                log.info(note)
            scheduler.start()  # blocks until shut down
            for thread in stopper:
                thread.join()
        finally:
            for sig, previous in old.items():
                signal.signal(sig, previous)
        log.info("scheduler stopped")
        return 0
    finally:
        pid_lock.release()


def _shutdown(scheduler: Any) -> None:
    """Stop ``scheduler`` once it runs (a signal may come before start() got going),
    waiting for the running job."""
    import time

    from apscheduler.schedulers import SchedulerNotRunningError

    deadline = time.monotonic() + 60
    while not scheduler.running and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        scheduler.shutdown(wait=True)
    except SchedulerNotRunningError:
        pass


# -- schedule show -------------------------------------------------------------------------------
@dataclass
class JobInfo:
    kind: str
    expression: str
    next_run: datetime | None
    stored_next_run: datetime | None  # what the daemon's job store holds (may be overdue)

    @property
    def overdue(self) -> bool:
        """The saved run is due already: the daemon runs it once when it starts."""
        return (
            self.stored_next_run is not None
            and self.next_run is not None
            and self.stored_next_run < self.next_run
        )

    def as_json(self) -> dict[str, Any]:
        from taurus_ops.store.format import format_time

        return {
            "job": self.kind,
            "cron": self.expression,
            "nextRun": format_time(self.next_run) if self.next_run else None,
            "storedNextRun": format_time(self.stored_next_run) if self.stored_next_run else None,
        }


def describe(config: Any, now: datetime | None = None) -> list[JobInfo]:
    """Each job's cron expression and next run time (and what the job store has saved)."""
    from tzlocal import get_localzone

    tz = get_localzone()
    now = (now or datetime.now(UTC)).astimezone(tz)
    try:
        stored = stored_jobs(config.home)
    except Exception:  # a damaged job store is shown as absent; the daemon recreates it
        stored = {}
    out = []
    for kind in _scheduled(config):
        expression = getattr(config.settings.schedule, kind)
        trigger = make_trigger(expression, tz)
        job = stored.get(kind)
        out.append(
            JobInfo(
                kind,
                expression,
                trigger.get_next_fire_time(None, now),
                job.next_run_time if job is not None else None,
            )
        )
    return out


@dataclass
class ScheduleStatus:
    daemon_pid: int | None  # the running ``schedule run``, if one is
    jobs: list[JobInfo]

    def as_json(self) -> dict[str, Any]:
        from taurus_ops.ops.timers import on_calendar

        return {
            "daemonPid": self.daemon_pid,
            "jobs": [{**j.as_json(), "onCalendar": on_calendar(j.expression)} for j in self.jobs],
        }


def status(ctx: JobContext) -> ScheduleStatus:
    """``taurus-ops schedule show``: each job's schedule and whether the daemon runs."""
    return ScheduleStatus(daemon_pid(ctx.home), describe(ctx.config))


def daemon_pid(home: Path) -> int | None:
    """The pid of a running ``schedule run`` for this home, or None."""
    from taurus_ops.store.lock import is_held, read_holder

    path = Path(home) / PID_LOCK
    return read_holder(path) if is_held(path) else None


def parse(expression: str) -> Cron:
    return parse_cron(expression)
