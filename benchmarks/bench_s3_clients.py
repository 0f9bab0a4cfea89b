"""Which S3 client for sync: boto3, obstore and s3fs (fsspec) against a local moto server.

    python -m benchmarks.bench_s3_clients [--count 1000] [--list 5000]

Each client does what sync needs: conditional creates (If-None-Match: *) and
conditional replaces (If-Match) of ~20 KB objects with user metadata, a listing of
``--list`` objects, and GETs, on 8 threads. Printed: wall seconds and the client's own
CPU seconds (the server's time is the same for all), the import time, and which of
the conditional writes each client can express. A client that is not installed is
skipped (obstore and s3fs are not Taurus dependencies: `pip install obstore s3fs`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

BODY = os.urandom(20_000)
KEY, SECRET = "bench", "bench-secret"


def import_seconds(module: str) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        best = min(best, time.perf_counter() - start)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return best - (time.perf_counter() - start)


class Boto3Client:
    name = "boto3"
    module = "boto3"
    conditional = "If-None-Match and If-Match"

    def __init__(self, endpoint: str, bucket: str) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            config=Config(max_pool_connections=16, s3={"addressing_style": "path"}),
        )

    def create(self, key: str) -> str:
        out = self.s3.put_object(
            Bucket=self.bucket, Key=key, Body=BODY, IfNoneMatch="*", Metadata={"device": "d"}
        )
        return out["ETag"]

    def replace(self, key: str, etag: str) -> str:
        out = self.s3.put_object(
            Bucket=self.bucket, Key=key, Body=BODY, IfMatch=etag, Metadata={"device": "d"}
        )
        return out["ETag"]

    def listing(self, prefix: str) -> int:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sum(len(p.get("Contents", ())) for p in pages)

    def get(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()


class ObstoreClient:
    name = "obstore"
    module = "obstore"
    conditional = "create and update (e_tag)"

    def __init__(self, endpoint: str, bucket: str) -> None:
        from obstore.store import S3Store

        self.obs = __import__("obstore")
        self.store = S3Store(
            bucket,
            endpoint=endpoint,
            region="us-east-1",
            access_key_id=KEY,
            secret_access_key=SECRET,
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
        )

    def create(self, key: str) -> str:
        return self.obs.put(self.store, key, BODY, mode="create").get("e_tag") or ""

    def replace(self, key: str, etag: str) -> str:
        result = self.obs.put(self.store, key, BODY, mode={"e_tag": etag})
        return result.get("e_tag") or ""

    def listing(self, prefix: str) -> int:
        return sum(len(chunk) for chunk in self.obs.list(self.store, prefix))

    def get(self, key: str) -> bytes:
        return bytes(self.obs.get(self.store, key).bytes())


class S3fsClient:
    name = "s3fs"
    module = "s3fs"
    conditional = "create only (no If-Match)"

    def __init__(self, endpoint: str, bucket: str) -> None:
        import s3fs

        self.bucket = bucket
        self.fs = s3fs.S3FileSystem(
            key=KEY,
            secret=SECRET,
            endpoint_url=endpoint,
            client_kwargs={"region_name": "us-east-1"},
            use_listings_cache=False,
        )

    def create(self, key: str) -> str:
        self.fs.pipe_file(f"{self.bucket}/{key}", BODY, mode="create")
        return ""

    def replace(self, key: str, etag: str) -> str:
        raise NotImplementedError

    def listing(self, prefix: str) -> int:
        return len(self.fs.find(f"{self.bucket}/{prefix}"))

    def get(self, key: str) -> bytes:
        return self.fs.cat_file(f"{self.bucket}/{key}")


def timed(work: Callable[[], Any]) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = work()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--list", type=int, default=5000)
    args = parser.parse_args()
    from helpers.s3_server import S3Server

    server = S3Server()
    os.environ.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
    rows = []
    try:
        for cls in (Boto3Client, ObstoreClient, S3fsClient):
            try:
                __import__(cls.module)
            except ImportError:
                print(f"{cls.name}: not installed, skipped")
                continue
            bucket = f"bench-{cls.name}"
            server.make_bucket(bucket)
            client = cls(server.endpoint, bucket)
            keys = [f"sessions/{n:06d}.json" for n in range(args.count)]
            with ThreadPoolExecutor(8) as pool:
                w_put, c_put, etags = timed(
                    lambda c=client, k=keys, p=pool: list(p.map(c.create, k))
                )
                try:
                    w_rep, c_rep, _ = timed(
                        lambda c=client, k=keys, e=etags, p=pool: list(p.map(c.replace, k, e))
                    )
                except NotImplementedError:
                    w_rep = c_rep = float("nan")
                w_get, c_get, _ = timed(lambda c=client, k=keys, p=pool: list(p.map(c.get, k)))
            more = [f"list/{n:06d}.json" for n in range(args.list)]
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda k, c=client: c.create(k), more))
            w_list, c_list, listed = timed(lambda c=client: c.listing("list/"))
            assert listed == args.list, (cls.name, listed)
            rows.append(
                (
                    cls.name,
                    import_seconds(cls.module),
                    w_put,
                    c_put,
                    w_rep,
                    c_rep,
                    w_get,
                    c_get,
                    w_list,
                    c_list,
                    cls.conditional,
                )
            )
    finally:
        server.close()
    print(
        f"{args.count} objects of 20 KB on 8 threads; a listing of {args.list}; "
        "seconds wall / client CPU"
    )
    print(
        f"{'client':<8} {'import':>7} {'create':>13} {'replace':>13} {'get':>13} "
        f"{'list':>13}  conditional writes"
    )
    for name, imp, wp, cp, wr, cr, wg, cg, wl, cl, cond in rows:
        print(
            f"{name:<8} {imp:>7.3f} {wp:>6.2f}/{cp:<6.2f} {wr:>6.2f}/{cr:<6.2f} "
            f"{wg:>6.2f}/{cg:<6.2f} {wl:>6.2f}/{cl:<6.2f}  {cond}"
        )


if __name__ == "__main__":
    main()
