"""The app factory over a real uvicorn on loopback: failures, outages, limits and 405s.

No stack needed: the routes here fail on purpose, the way a bug or a lost dependency would.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
import redis
from fastapi import APIRouter, Request
from sqlalchemy import exc as db

from paywall.logs import configure_logging, flush_logs
from paywall.settings import Settings
from paywall.stack.process import free_port
from transactional.common.app import MAX_HEADER_BYTES, MAX_HEADERS, create_app
from transactional.common.serving import MAX_REQUEST_HEAD_BYTES, serving

PASSWORD = "correct horse battery staple 42"
CARD = "4242424242424242"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2lnbmF0dXJlLXRoYXQtaXMtc2VjcmV0"

router = APIRouter()


@router.post("/boom")
async def boom(request: Request) -> None:
    body = await request.json()  # the password sits in a local of this frame
    raise RuntimeError(f"bug while handling a signup for {body['email']}")


@router.get("/db-down")
def db_down() -> None:
    refused = OSError("connection to server at 10.0.0.7, port 5432 failed: Connection refused")
    raise db.OperationalError("SELECT 1", {"password": PASSWORD}, refused)


@router.get("/db-invalidated")
def db_invalidated() -> None:
    raise db.DBAPIError(
        "SELECT 1", None, OSError("server closed the connection"), connection_invalidated=True
    )


@router.get("/db-bug")
def db_bug() -> None:
    raise db.ProgrammingError("SELEC 1", None, OSError("syntax error at or near SELEC"))


@router.get("/redis-down")
def redis_down() -> None:
    raise redis.ConnectionError("Error 111 connecting to redis://:hunter2@10.0.0.8:6379")


@router.get("/items/{item_id}")
def get_item(item_id: str) -> dict[str, str]:
    return {"id": item_id}


@router.delete("/items/{item_id}")
def delete_item(item_id: str) -> dict[str, str]:
    return {"id": item_id}


@router.patch("/items/{item_id}")
def patch_item(item_id: str) -> dict[str, str]:
    return {"id": item_id}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    app = create_app("test", [router], {})
    with serving(app, "127.0.0.1", free_port()) as base:
        yield base


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_a_bug_is_a_500_problem_logged_once_without_secrets(
    url: str, log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(_env_file=None, LOG_FORMAT=log_format))  # type: ignore[call-arg]
    capsys.readouterr()
    response = httpx.post(
        f"{url}/boom",
        json={"email": "ada@example.com", "password": PASSWORD, "card_number": CARD},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    flush_logs()
    out = capsys.readouterr().err

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Internal Server Error"
    assert "RuntimeError" not in response.text
    # One line, one traceback: not again by Starlette, not again by uvicorn.
    assert out.count("request.failed") == 1
    assert out.count("Traceback (most recent call last)") == 1
    assert "Exception in ASGI application" not in out
    assert "RuntimeError: bug while handling a signup" in out
    for secret in (PASSWORD, CARD, TOKEN):
        assert secret not in out, f"{secret!r} reached the log:\n{out}"


@pytest.mark.parametrize(
    ("path", "dependency"),
    [("/db-down", "postgres"), ("/db-invalidated", "postgres"), ("/redis-down", "redis")],
)
def test_a_lost_dependency_is_a_503_problem_with_retry_after(
    url: str, path: str, dependency: str
) -> None:
    response = httpx.get(f"{url}{path}", timeout=10)

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    problem = response.json()
    assert problem["type"] == "https://paywall.dev/problems/dependency-unavailable"
    assert problem["dependency"] == dependency
    # Named, never located: no address, user or password of the dependency.
    for leak in ("10.0.0", "5432", "6379", "hunter2", PASSWORD, "SELECT"):
        assert leak not in response.text


def test_other_database_errors_stay_500(url: str) -> None:
    assert httpx.get(f"{url}/db-bug", timeout=10).status_code == 500


def test_405_allows_every_method_of_the_path(url: str) -> None:
    response = httpx.put(f"{url}/items/1", timeout=10)

    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed == {"GET", "DELETE", "PATCH"}


def test_too_many_headers_are_431(url: str) -> None:
    headers = [(f"x-h{i}", "1") for i in range(5000)]
    response = httpx.get(f"{url}/items/1", headers=headers, timeout=10)

    assert response.status_code == 431
    assert response.headers["content-type"] == "application/problem+json"
    just_enough = [(f"x-h{i}", "1") for i in range(MAX_HEADERS - 10)]
    assert httpx.get(f"{url}/items/1", headers=just_enough, timeout=10).status_code == 200


def test_too_large_headers_are_431(url: str) -> None:
    response = httpx.get(
        f"{url}/items/1", headers={"x-big": "a" * (MAX_HEADER_BYTES + 1)}, timeout=10
    )

    assert response.status_code == 431
    assert response.json()["type"] == "https://paywall.dev/problems/headers-too-large"


def test_the_server_stops_reading_a_huge_header(url: str) -> None:
    """8 MB of header: refused once the server has buffered its bound, never read whole."""
    host, port = url.removeprefix("http://").split(":")
    head = b"GET /items/1 HTTP/1.1\r\nHost: x\r\nX-Big: "
    answer = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        try:
            for _ in range(8 * 1024 // 64):
                sock.sendall(b"a" * 64 * 1024)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed the connection: what we want
        try:
            answer = sock.recv(4096)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert MAX_REQUEST_HEAD_BYTES < 8 * 1024 * 1024
    # And the server still serves.
    assert httpx.get(f"{url}/items/1", timeout=10).status_code == 200
