"""Benchmark: ``POST /$process-message`` with the knee referral Bundle through a real uvicorn server.

    .venv/bin/python bench/serve.py [--requests N] [--postgres URL] [--only sqlite|postgres|workers|worklist]

For SQLite (a fresh file) and PostgreSQL (a fresh schema of ``--postgres``, default the local ``test``
database; skipped when it does not answer), at concurrency 1, 8 and 32, it measures throughput and
p50/p99 latency of ``$process-message`` (each request a new message and a new referral) and, in the same
run against the same server process, of ``POST /bench/read-body``, a route added to the same app that only
reads the body. It prints the ratios process-message / read-body: what storing, validating and mapping a
referral costs over the HTTP stack itself. The server runs in its own process so that client and server do
not share one interpreter lock.

The worklist (issue 15): with 60 referrals held, ``GET /Task?status=requested&_count=50`` with
``_include=Task:focus&_include=Task:patient`` (the page, each Task's ServiceRequest and Patient: 150
resources) against the same search without includes (50), in alternating rounds on the same server, on
SQLite and PostgreSQL: p50 and mean latency of each and the ratio (target: within 3x).

Then, on PostgreSQL, ``escape-fhir serve --workers 1`` and ``--workers 2`` as a user starts them (the real
command, uvicorn workers), both running, measured in alternating rounds at the same concurrencies:
throughput and latency of ``$process-message`` with each, and the ratio 2 workers / 1 worker.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from fastapi import Request, Response

ROOT = Path(__file__).resolve().parents[1]
KNEE = ROOT / "examples" / "bundles" / "knee-gp.message.json"
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _serve(database_url: str, port: int) -> None:
    import uvicorn

    from escape_fhir.api import create_app
    from escape_fhir.settings import Settings

    app = create_app(Settings(database_url=database_url, port=port, log_level="WARNING"))

    @app.post("/bench/read-body")
    async def read_body(request: Request) -> Response:
        await request.body()
        return Response(status_code=200)

    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _bodies(count: int) -> list[bytes]:
    template = json.loads(KNEE.read_bytes())
    out = []
    for _ in range(count):
        template["id"] = str(uuid.uuid4())
        template["entry"][1]["resource"]["identifier"][0]["value"] = str(uuid.uuid4())
        out.append(json.dumps(template).encode())
    return out


def _run(url: str, path: str, bodies: list[bytes], concurrency: int) -> tuple[float, float, float]:
    """Requests per second, p50 and p99 latency (ms)."""
    client = httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency))

    def one(body: bytes) -> float:
        headers = {
            "Content-Type": "application/fhir+json",
            "X-Request-ID": str(uuid.uuid4()),
            "X-Correlation-ID": "bench",
        }
        started = time.perf_counter()
        r = client.post(path, content=body, headers=headers)
        if r.status_code != 200:
            raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
        return (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(concurrency) as pool:
        started = time.perf_counter()
        latencies = sorted(pool.map(one, bodies))
        wall = time.perf_counter() - started
    client.close()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return len(bodies) / wall, statistics.median(latencies), p99


def _bench(name: str, database_url: str, requests: int) -> None:
    port = _free_port()
    server = multiprocessing.Process(target=_serve, args=(database_url, port), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url)
        print(f"\n{name}")
        print(f"{'concurrency':>11} | {'endpoint':<16} | {'req/s':>7} | {'p50 ms':>7} | {'p99 ms':>7}")
        for concurrency in (1, 8, 32):
            bodies = _bodies(requests)
            # Warm up both routes (the first messages compile statements and load definitions) with
            # messages of their own: every timed message is a new one.
            _run(url, "/$process-message", _bodies(max(5, concurrency)), concurrency)
            _run(url, "/bench/read-body", bodies[:20], concurrency)
            message = _run(url, "/$process-message", bodies, concurrency)
            baseline = _run(url, "/bench/read-body", bodies, concurrency)
            for label, row in (("$process-message", message), ("read-body", baseline)):
                print(f"{concurrency:>11} | {label:<16} | {row[0]:7.1f} | {row[1]:7.2f} | {row[2]:7.2f}")
            ratios = (baseline[0] / message[0], message[1] / baseline[1], message[2] / baseline[2])
            print(f"{'':>11} | {'ratio':<16} | {ratios[0]:6.1f}x | {ratios[1]:6.1f}x | {ratios[2]:6.1f}x")
    finally:
        server.terminate()
        server.join(10)


WORKLIST = "/Task?status=requested&_count=50"
INCLUDES = "&_include=Task:focus&_include=Task:patient"


def _bench_worklist(name: str, database_url: str, referrals: int = 60, rounds: int = 60) -> None:
    """A page of 50 Tasks with their ServiceRequests and Patients against the page alone (alternating)."""
    port = _free_port()
    server = multiprocessing.Process(target=_serve, args=(database_url, port), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url)
        _run(url, "/$process-message", _bodies(referrals), 8)
        client = httpx.Client(base_url=url, timeout=60)
        timed: dict[str, list[float]] = {"without includes": [], "with includes": []}
        sizes = {}
        for n in range(rounds + 5):  # the first 5 rounds warm up (statements compiled, caches filled)
            for label, path in (("without includes", WORKLIST), ("with includes", WORKLIST + INCLUDES)):
                started = time.perf_counter()
                r = client.get(path)
                elapsed = (time.perf_counter() - started) * 1000
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
                sizes[label] = len(r.json()["entry"])
                if n >= 5:
                    timed[label].append(elapsed)
        client.close()
        print(f"\n{name}: worklist page of 50 Tasks ({referrals} referrals held), {rounds} alternating rounds")
        print(f"{'search':<17} | {'entries':>7} | {'p50 ms':>7} | {'mean ms':>7}")
        rows = {}
        for label, latencies in timed.items():
            rows[label] = (statistics.median(latencies), statistics.fmean(latencies))
            print(f"{label:<17} | {sizes[label]:>7} | {rows[label][0]:7.2f} | {rows[label][1]:7.2f}")
        with_, without = rows["with includes"], rows["without includes"]
        print(f"{'ratio':<17} | {'':>7} | {with_[0] / without[0]:6.2f}x | {with_[1] / without[1]:6.2f}x  (target: 3x)")
    finally:
        server.terminate()
        server.join(10)


def _bench_workers(database_url: str, requests: int, rounds: int = 4) -> None:
    """``$process-message`` through ``escape-fhir serve --workers N`` for N = 1 and 2 on the same database.
    Both servers run at once and are measured in alternating rounds (each a share of the requests), so that
    a change of load on the machine during the run falls on both alike."""
    servers: dict[int, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        for workers in (1, 2):
            port = _free_port()
            command = [sys.executable, "-m", "escape_fhir.cli", "serve", "--port", str(port)]
            command += ["--database-url", database_url, "--workers", str(workers)]
            env = {**os.environ, "ESCAPE_FHIR_LOG_LEVEL": "WARNING"}
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            servers[workers] = process, f"http://127.0.0.1:{port}"
            _wait(servers[workers][1])
        rows = {}
        for concurrency in (1, 8, 32):
            timed: dict[int, tuple[float, list[float]]] = {1: (0.0, []), 2: (0.0, [])}
            for _, url in servers.values():
                # Warm-up: every worker compiles its statements and loads its definitions on first use.
                _run_timed(url, _bodies(max(10, 2 * concurrency)), concurrency)
            for _ in range(rounds):
                for workers, (_, url) in servers.items():
                    wall, latencies = _run_timed(url, _bodies(requests // rounds), concurrency)
                    timed[workers] = (timed[workers][0] + wall, timed[workers][1] + latencies)
            for workers, (wall, latencies) in timed.items():
                latencies.sort()
                p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
                rows[workers, concurrency] = (len(latencies) / wall, statistics.median(latencies), p99)
    finally:
        for process, _ in servers.values():
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    print("\nPostgreSQL, escape-fhir serve --workers N: $process-message (alternating rounds)")
    print(f"{'concurrency':>11} | {'workers':>7} | {'req/s':>7} | {'p50 ms':>7} | {'p99 ms':>7}")
    for concurrency in (1, 8, 32):
        for workers in (1, 2):
            row = rows[workers, concurrency]
            print(f"{concurrency:>11} | {workers:>7} | {row[0]:7.1f} | {row[1]:7.2f} | {row[2]:7.2f}")
        gain = rows[2, concurrency][0] / rows[1, concurrency][0]
        print(f"{'':>11} | {'2 / 1':>7} | {gain:6.2f}x |")


def _run_timed(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    """Wall time and every latency (ms) of posting ``bodies`` to ``$process-message``."""
    client = httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency))

    def one(body: bytes) -> float:
        headers = {"Content-Type": "application/fhir+json", "X-Request-ID": str(uuid.uuid4()), "X-Correlation-ID": "b"}
        started = time.perf_counter()
        r = client.post("/$process-message", content=body, headers=headers)
        if r.status_code != 200:
            raise RuntimeError(f"{r.status_code} {r.text[:300]}")
        return (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(concurrency) as pool:
        started = time.perf_counter()
        latencies = list(pool.map(one, bodies))
        wall = time.perf_counter() - started
    client.close()
    return wall, latencies


def _wait(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/metadata", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def _postgres_schema(url: str) -> Any:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        conn = psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True, connect_timeout=2)
    except psycopg.OperationalError:
        return None, None
    conn.execute(f"CREATE SCHEMA {schema}")
    return conn, schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per endpoint and concurrency")
    parser.add_argument("--postgres", default=PG_DEFAULT, help="PostgreSQL URL (a fresh schema is used)")
    parser.add_argument("--only", choices=["sqlite", "postgres", "workers", "worklist"], help="run one section only")
    args = parser.parse_args()
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as folder:
            _bench("SQLite", f"sqlite:///{folder}/bench.sqlite3", args.requests)
    if args.only in (None, "worklist"):
        with tempfile.TemporaryDirectory() as folder:
            _bench_worklist("SQLite", f"sqlite:///{folder}/worklist.sqlite3")
    if args.only == "sqlite":
        return
    conn, schema = _postgres_schema(args.postgres)
    if conn is None:
        print("\nPostgreSQL: skipped (nothing answers on 127.0.0.1:5432)")
        return
    url = f"{args.postgres}?options=-csearch_path%3D{schema}"
    try:
        if args.only in (None, "postgres"):
            _bench("PostgreSQL", url, args.requests)
        if args.only in (None, "worklist"):
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}")
            _bench_worklist("PostgreSQL", url)
        if args.only in (None, "workers"):
            _bench_workers(url, args.requests)
    finally:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


if __name__ == "__main__":
    main()
