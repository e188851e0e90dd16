#!/usr/bin/env python3
"""Requests and wall time for `targetrun status` on N targets under P prefixes on S3.

Starts moto's S3 server on 127.0.0.1 (``pip install -e '.[test]'``), writes N objects
under P prefixes, then runs ``targetrun status`` in process against a pipeline of N tasks
whose targets are those objects (half of the requested tasks exist, so the walk goes one
level down). Requests are counted at the server (werkzeug's access log). For comparison,
the same targets are checked one key at a time with ``fs.exists``, as Prefect 1 and Luigi
do.

    python benchmarks/bench_s3_status.py                 # N=1000, P=10
    python benchmarks/bench_s3_status.py --tasks 5000 --prefixes 20
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--prefixes", type=int, default=10)
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
    try:
        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        fs.mkdir("bench")
        keys = [f"bench/p{i % args.prefixes}/t{i}.json" for i in range(args.tasks)]
        fs.pipe({key: b"1\n" for key in keys[::2]})  # every other target exists

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
    finally:
        server.stop()

    print(f"targets: {args.tasks} under {args.prefixes} prefixes ({args.tasks // 2} exist)")
    print(f"{'method':<34}{'requests':>10}{'seconds':>10}")
    print(f"{'targetrun status (listings)':<34}{status_requests:>10}{status_s:>10.2f}")
    print(f"{'per-key exists (Prefect, Luigi)':<34}{per_key_requests:>10}{per_key_s:>10.2f}")
    print(f"ratio: {per_key_requests / max(status_requests, 1):.0f}x fewer requests, "
          f"{per_key_s / status_s:.1f}x faster")


if __name__ == "__main__":
    main()
