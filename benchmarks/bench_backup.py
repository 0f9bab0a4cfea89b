"""`taurus-ops backup create` against the tutorial's `tar -czf`.

    python -m benchmarks.bench_backup [--count 10k] [--repeat 3]

Both are whole programs writing a .tar.gz of ``~/.taurus/sessions`` into a scratch
folder: ``taurus-ops backup create -o OUT`` and the tutorial's
``tar -czf taurus-sessions-backup-$(date +%Y%m%d).tar.gz ~/.taurus/sessions/`` (which
is also what a competent user runs). Taurus's time includes what tar does not do: a
sha256 manifest and a verification read of the new archive before it is kept.
The archives' sizes are compared too.
"""

from __future__ import annotations

import shlex
import shutil

from benchmarks.common import BenchHome, Row, bench_main, best, row


def rows(bench: BenchHome, repeat: int) -> list[Row]:
    ops, env = bench.ops, bench.env
    out = bench.base / "backups"
    quoted = shlex.quote(str(out))

    def clear() -> None:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()

    tar_command = (
        f"cd {quoted} && tar -czf taurus-sessions-backup-$(date +%Y%m%d).tar.gz ~/.taurus/sessions/"
    )
    tar = best(tar_command, repeat, env, setup=clear, ok=(0,))
    tar_bytes = sum(p.stat().st_size for p in out.glob("*.tar.gz"))
    ours = best(f"{ops} backup create -o {quoted}", repeat, env, setup=clear)
    our_bytes = sum(p.stat().st_size for p in out.glob("*.tar.gz"))
    shutil.rmtree(out, ignore_errors=True)
    return [
        row("`backup create` (sha256 manifest, verified)", ours, "`tar -czf`", tar, tutorial=True),
        row("backup size", our_bytes / 1e6, "`tar -czf`'s", tar_bytes / 1e6, unit="MB"),
    ]


def main() -> None:
    bench_main(rows, __doc__)


if __name__ == "__main__":
    main()
