"""taurus-ops sync vs ``rclone sync`` to a local S3 server, on the 10,000-session corpus.

    python -m benchmarks.bench_sync [--count 10000] [--changed 0.01]

Both push the same session folder to their own bucket of one moto server on
127.0.0.1 (tests/helpers/s3_server.py): the first push, the first pull into a second
(empty) home, a sync after 1% of the sessions changed, that change pulled into the
second home, and a sync with nothing changed. Taurus runs `taurus-ops sync`
(both ways: it also checks what changed on the remote); rclone runs `rclone sync`
(Debian's rclone, configured by environment variables) with its default check
(size and modification time, which it keeps in each object's metadata) and with
``--checksum`` (size and MD5). Whole commands are timed, start-up included; the
requests each made are counted at the server. moto answers one request at a time,
so request counts matter more than client speed here; the first push is bound by
moto (see the requests and the CPU columns).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from benchmarks.common import bench_home
from benchmarks.corpus import ensure_corpus
from taurus_ops.store import format as fmt

KEY, SECRET = "bench-key", "bench-secret"


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (the child's) of one command, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def change(sessions: Path, share: float) -> int:
    """Append a message to every n-th session (rewritten atomically: a new file, as a chat saves)."""
    files = sorted(p for p in sessions.iterdir() if p.suffix == ".json" and not p.is_symlink())
    step = max(1, round(1 / share))
    picked = files[::step]
    for path in picked:
        data = fmt.loads(path.read_bytes())
        data["messages"].append({"role": "user", "content": "One more thing about this."})
        data["updated"] = fmt.now_iso()
        tmp = path.with_name("." + path.name + ".bench")
        tmp.write_bytes(fmt.dumps(data))
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    return len(picked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--changed", type=float, default=0.01)
    args = parser.parse_args()
    if shutil.which("rclone") is None:
        raise SystemExit("rclone is not installed (apt-get install -y rclone)")
    from helpers.s3_server import S3Server

    corpus = ensure_corpus(args.count)
    home = bench_home(corpus)
    # each tool gets its own copy of the sessions: rclone copies what Taurus writes otherwise
    rclone_dir = home.base / "rclone-sessions"
    shutil.copytree(home.sessions, rclone_dir, copy_function=os.link)
    # a second machine: an empty home for Taurus, an empty folder for rclone
    other = home.base / "other"
    (other / ".taurus").mkdir(parents=True, mode=0o700)
    rclone_other = home.base / "rclone-other"
    rclone_other.mkdir()
    server = S3Server()
    try:
        server.make_bucket("bench-taurus")
        server.make_bucket("bench-rclone")
        for folder, device in ((home.home, "bench"), (other / ".taurus", "bench-other")):
            (folder / "config.yaml").write_text(
                "remote:\n  url: s3://bench-taurus/sessions\n"
                f"  endpointUrl: {server.endpoint}\n  device: {device}\n"
            )
        env = {**os.environ, **home.env, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET}
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        other_env = {**env, "TAURUS_HOME": str(other / ".taurus"), "HOME": str(other)}
        plain = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        rclone_env = {
            **plain,
            "RCLONE_CONFIG_BENCH_TYPE": "s3",
            "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
            "RCLONE_CONFIG_BENCH_ENDPOINT": server.endpoint,
            "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": KEY,
            "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SECRET,
            "RCLONE_CONFIG_BENCH_REGION": "us-east-1",
            "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
        }
        taurus = [sys.executable, "-m", "taurus_ops.cli", "sync"]
        rclone = ["rclone", "sync", str(rclone_dir), "bench:bench-rclone/sessions"]
        rclone_pull = ["rclone", "sync", "bench:bench-rclone/sessions", str(rclone_other)]
        rows = []

        def step(label: str, commands: list[tuple[str, list[str], dict[str, str]]]) -> None:
            for tool, cmd, environ in commands:
                before = server.counts()
                wall, cpu = run(cmd, environ)
                after = server.counts()
                made = {k: after.get(k, 0) - before.get(k, 0) for k in after}
                rows.append((label, tool, wall, cpu, made))

        step(
            "first push",
            [("taurus-ops sync", taurus, env), ("rclone sync", rclone, rclone_env)],
        )
        step(
            "first pull, 2nd home",
            [("taurus-ops sync", taurus, other_env), ("rclone sync", rclone_pull, rclone_env)],
        )
        changed = change(home.sessions, args.changed)
        change(rclone_dir, args.changed)
        step(
            f"{changed} changed ({args.changed:.0%})",
            [
                ("taurus-ops sync", taurus, env),
                ("rclone sync", rclone, rclone_env),
            ],
        )
        step(
            "  pulled, 2nd home",
            [("taurus-ops sync", taurus, other_env), ("rclone sync", rclone_pull, rclone_env)],
        )
        step(
            "nothing changed",
            [
                ("taurus-ops sync", taurus, env),
                ("rclone sync", rclone, rclone_env),
                ("rclone sync --checksum", [*rclone, "--checksum"], rclone_env),
            ],
        )
    finally:
        server.close()
        home.close()
    size = sum(p.stat().st_size for p in corpus.iterdir())
    print(f"{args.count} sessions, {size / 1e6:.0f} MB; moto S3 server on 127.0.0.1")
    print(f"{'task':<18} {'command':<24} {'wall (s)':>9} {'cpu (s)':>8}  requests")
    for label, tool, wall, cpu, made in rows:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(made.items()) if v)
        print(f"{label:<18} {tool:<24} {wall:>9.2f} {cpu:>8.2f}  {kinds}")
    print()
    by = {(label, tool): wall for label, tool, wall, _, _ in rows}
    for label in dict.fromkeys(label for label, _, _, _, _ in rows):
        ours = by[(label, "taurus-ops sync")]
        for (other_label, tool), theirs in by.items():
            if other_label == label and tool != "taurus-ops sync":
                print(f"{label}: {tool} takes {theirs / ours:.1f}x the time of taurus-ops sync")


if __name__ == "__main__":
    main()
