"""Backup create vs the tutorial's ``tar -czf``, on the 10,000-session corpus.

    python -m benchmarks.bench_backup [--count 10000] [--repeat 3]

The corpus is copied into a temporary home (``~/.taurus/sessions``). Taurus's time
includes what the recipe does not do: a sha256 manifest and a full verification
read of the new archive (every checksum) before it is kept. Rows for
compressing on the reading thread and for skipping verification show where the
time goes. Compression (zlib level 6, gzip's default) runs on a second thread.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchmarks.common import report, time_call, time_shell
from benchmarks.corpus import ensure_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    corpus = ensure_corpus(args.count)
    with tempfile.TemporaryDirectory(prefix="bench-backup-") as tmp:
        home = Path(tmp)
        taurus_home = home / ".taurus"
        taurus_home.mkdir(mode=0o700)
        subprocess.run(["cp", "-a", str(corpus), str(taurus_home / "sessions")], check=True)
        os.environ["HOME"] = str(home)
        os.environ["TAURUS_HOME"] = str(taurus_home)
        from taurus_ops.config import load_config
        from taurus_ops.ops.backup.create import create_backup

        config = load_config()
        out = home / "out"
        out.mkdir()

        def ours(**kwargs: object):  # type: ignore[no-untyped-def]
            def run() -> None:
                created = create_backup(config, output=out, **kwargs)  # type: ignore[arg-type]
                created.path.unlink()

            return run

        recipe = (
            f"cd {out} && tar -czf taurus-sessions-backup-$(date +%Y%m%d).tar.gz "
            f"~/.taurus/sessions/ 2>/dev/null; rm -f {out}/*.tar.gz"
        )
        theirs = time_shell(recipe, repeat=args.repeat, env={"HOME": str(home)})
        rows = [
            (
                "backup create (gzip -6, verified)",
                time_call(ours(), args.repeat),
                theirs,
            ),
            (
                "  same, without the verify pass",
                time_call(ours(verify=False), args.repeat),
                theirs,
            ),
            (
                "  compressing on the same thread",
                time_call(ours(threaded=False), args.repeat),
                theirs,
            ),
        ]
        size = sum(p.stat().st_size for p in (taurus_home / "sessions").iterdir())
        print(
            f"{args.count} sessions, {size / 1e6:.0f} MB; recipe: tar -czf ... ~/.taurus/sessions/"
        )
        report(rows)
        ratio = rows[0][1] / theirs
        print(f"backup create takes {ratio:.2f}x the time of tar -czf (aim: <= 1.2x)")
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
