"""PostgreSQL: the endpoint on a fresh schema, and two server processes on one database receiving the same
message at the same moment (exactly one referral). Skipped with the reason where no PostgreSQL answers."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import MakeClient, Server, example, message_headers
from tests.conftest import children

pytestmark = pytest.mark.postgres


def test_the_endpoint_on_postgresql(make_client: MakeClient, pg_url: str) -> None:
    client = make_client(database_url=pg_url)
    first = client.post("/$process-message", content=example("knee-gp"), headers=message_headers("pg-1"))
    assert first.status_code == 200, first.text
    assert (
        client.post("/$process-message", content=example("knee-gp"), headers=message_headers("pg-1")).status_code == 409
    )
    again = client.post("/$process-message", content=example("knee-gp"), headers=message_headers("pg-2"))
    assert again.json() == first.json()
    task = client.get("/Task").json()["entry"][0]["resource"]
    r = client.put(f"/Task/{task['id']}", json={**task, "status": "accepted"}, headers={"If-Match": 'W/"1"'})
    assert r.status_code == 200
    assert (
        client.put(
            f"/Task/{task['id']}", json={**task, "status": "accepted"}, headers={"If-Match": 'W/"1"'}
        ).status_code
        == 412
    )
    assert (
        client.get("/ServiceRequest", params={"_lastUpdated": "ge2020-01-01", "status": "active"}).json()["total"] == 1
    )


def test_two_servers_one_database_one_message_one_referral(pg_url: str, tmp_path: Path) -> None:
    servers = [Server(pg_url, tmp_path / f"server{n}.log") for n in range(2)]
    try:
        for server in servers:
            server.wait()
        for round_ in range(3):
            sent = json.loads(example("knee-gp"))
            sent["id"] = f"race-{round_}"
            sent["entry"][1]["resource"]["identifier"][0]["value"] = f"00000000-0000-4000-8000-00000000000{round_}"
            body = json.dumps(sent).encode()
            barrier = threading.Barrier(4)
            answers: list[httpx.Response] = []

            def deliver(
                n: int,
                body: bytes = body,
                barrier: threading.Barrier = barrier,
                answers: list[httpx.Response] = answers,
            ) -> None:
                barrier.wait()
                url = servers[n % 2].url
                answers.append(
                    httpx.post(f"{url}/$process-message", content=body, headers=message_headers(), timeout=30)
                )

            threads = [threading.Thread(target=deliver, args=(n,)) for n in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
            assert len({a.content for a in answers}) == 1
        total = httpx.get(f"{servers[0].url}/ServiceRequest").json()["total"]
        assert total == 3
        assert httpx.get(f"{servers[1].url}/Task").json()["total"] == 3
    finally:
        for server in servers:
            server.stop()


def test_serve_with_two_workers(pg_url: str, tmp_path: Path) -> None:
    """``serve --workers 2``: two uvicorn worker processes on one PostgreSQL database answer the endpoint; the
    same message posted four times (each post a new connection, taken by whichever worker accepts it) makes one
    referral; SIGTERM stops the parent and its workers."""
    server = Server(pg_url, tmp_path / "server.log", options=["--workers", "2"])
    try:
        server.wait()
        workers = [pid for pid, command in children(server.process.pid) if "spawn_main" in command]
        assert len(workers) == 2, children(server.process.pid)
        bodies = [example("knee-gp")] * 4 + [example("back-self-low")]
        answers = [
            httpx.post(f"{server.url}/$process-message", content=body, headers=message_headers(f"w-{n}"), timeout=30)
            for n, body in enumerate(bodies)
        ]
        assert [a.status_code for a in answers] == [200] * 5
        assert len({a.content for a in answers[:4]}) == 1  # one referral, whichever worker answered
        assert httpx.get(f"{server.url}/Task").json()["total"] == 2
    finally:
        server.process.terminate()
        code = server.process.wait(30)
    assert code == 0, server.log.read_text()
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
