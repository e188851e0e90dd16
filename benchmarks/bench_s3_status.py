#!/usr/bin/env python3
"""Requests and wall time for `targetrun status` on S3, per bucket shape.

Starts moto's S3 server on 127.0.0.1 (``pip install -e '.[test]'``) and, for each of three
shapes, writes the objects and runs ``targetrun status`` in process against a pipeline
whose targets are those keys (every other target exists):

* dense prefixes: N targets under P prefixes;
* one target per prefix under a shared parent (Hive style ``events/dt=YYYY-MM-DD/part.json``
  x 365);
* a few targets (5) in a crowded prefix (3,000 other objects);
* keys that are also folders (``nested/r000`` and ``nested/r000/part.json``, 100 each).

Requests are counted at the server (werkzeug's access log: one line per request). For
comparison, the same targets are checked one key at a time with ``fs.exists``, as
Prefect 1 and Luigi do.

    python benchmarks/bench_s3_status.py                 # dense: N=1000, P=10
    python benchmarks/bench_s3_status.py --tasks 5000 --prefixes 20
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                  AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class RequestCounter(logging.Handler):
    """Counts the server's access-log lines: one per HTTP request it answered."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if '"' in record.getMessage():  # '127.0.0.1 - - [...] "GET /bucket?list-type=2 ..." 200 -'
            self.count += 1


def shapes(tasks: int, prefixes: int) -> dict[str, tuple[list[str], list[str]]]:
    """shape -> (target keys, other keys in the bucket). Every other target exists."""
    dense = [f"bench/dense/p{i % prefixes}/t{i}.json" for i in range(tasks)]
    start = dt.date(2025, 1, 1)
    hive = [f"bench/events/dt={start + dt.timedelta(days=i)}/part.json" for i in range(365)]
    crowd = [f"bench/crowd/a{i:05d}.json" for i in range(3000)]
    few = [f"bench/crowd/report-{i}.json" for i in range(5)]
    # keys that are also folders: r000 and r000/part.json both targets (a listing of
    # bench/nested/ holds the object r000 and the prefix r000/ under one name)
    nested = [f"bench/nested/r{i // 2:03d}" + ("/part.json" if i % 2 else "") for i in range(200)]
    nested = nested[1::2] + nested[::2]  # of those that exist (keys[::2]) r000 is an object and a folder
    return {"dense prefixes": (dense, []), "one per prefix (Hive)": (hive, []),
            "few in a crowded prefix": (few, crowd), "keys that are folders": (nested, [])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="targets of the dense shape")
    parser.add_argument("--prefixes", type=int, default=10, help="prefixes of the dense shape")
    args = parser.parse_args()

    import fsspec
    from moto.server import ThreadedMotoServer

    from targetrun.cli import invoke

    counter = RequestCounter()
    log = logging.getLogger("werkzeug")
    log.setLevel(logging.INFO)
    log.addHandler(counter)
    log.propagate = False
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    fsspec.config.conf["s3"] = {"client_kwargs": {"endpoint_url": f"http://{host}:{port}"}, "use_listings_cache": False}
    rows = []
    try:
        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        fs.mkdir("bench")
        for shape, (keys, others) in shapes(args.tasks, args.prefixes).items():
            fs.pipe({key: b"1\n" for key in [*keys[::2], *others]})  # every other target exists
            with tempfile.TemporaryDirectory() as folder:
                pipeline = Path(folder) / "Pipelinefile.yaml"
                lines = ["name: s3bench", "tasks:"]
                lines += [f"  t{i}: {{run: m:f, target: 's3://{key}'}}" for i, key in enumerate(keys)]
                pipeline.write_text("\n".join(lines) + "\n")
                out, err = io.StringIO(), io.StringIO()
                invoke(["validate", "-f", str(pipeline)], out, err)  # parse once; not measured

                counter.count = 0
                began = time.perf_counter()
                code = invoke(["status", "--json", "-f", str(pipeline)], out, err)
                status_s, status_requests = time.perf_counter() - began, counter.count
                if code != 0:
                    raise SystemExit(err.getvalue())

            counter.count = 0
            began = time.perf_counter()
            probe = fsspec.filesystem("s3", skip_instance_cache=True)
            found = sum(probe.exists(key) for key in keys)
            per_key_s, per_key_requests = time.perf_counter() - began, counter.count
            assert found == len(keys[::2])
            rows.append((shape, len(keys), len(keys) + len(others) - len(keys) // 2, status_requests, status_s,
                         per_key_requests, per_key_s))
    finally:
        server.stop()

    print(f"{'shape':<26}{'targets':>8}{'objects':>9}{'status req':>12}{'s':>7}{'per-key req':>13}{'s':>7}"
          f"{'ok (<= per-key)':>17}")
    for shape, n, objects, req, secs, pk_req, pk_s in rows:
        print(f"{shape:<26}{n:>8}{objects:>9}{req:>12}{secs:>7.2f}{pk_req:>13}{pk_s:>7.2f}"
              f"{'yes' if req <= pk_req else 'NO':>17}")
    print("goal: never more requests than per-key checks, on any shape "
          "(per-key: s3fs exists(), a HEAD, plus a LIST when missing)")


if __name__ == "__main__":
    main()
