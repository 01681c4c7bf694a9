"""Webhooks are never sent to private addresses in production: refused when an endpoint is
registered (422, nothing made) and, on a real socket, by the worker's client before a byte
reaches the receiver, whatever name leads there."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from paywall import webhook_targets
from paywall.settings import reset_settings
from streaming.webhooks import worker
from tests.conftest import Api
from tests.integration.webhook_receiver import receiver

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # the cloud metadata service
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fd00::1", False),
        ("fe80::1%eth0", False),
        ("::ffff:127.0.0.1", False),
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("::ffff:8.8.8.8", True),
    ],
)
def test_only_global_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert webhook_targets.is_public(address) is public


def test_a_url_is_refused_by_what_its_host_resolves_to() -> None:
    assert "resolves to 127.0.0.1" in (webhook_targets.refusal("http://localhost:8080/x") or "")
    assert "169.254.169.254" in (webhook_targets.refusal("https://169.254.169.254/latest") or "")
    assert "does not resolve" in (webhook_targets.refusal("https://hooks.example.invalid/") or "")
    assert webhook_targets.refusal("https://8.8.8.8/hooks") is None


@pytest.fixture
def refusing_private() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WEBHOOK_PRIVATE_TARGETS", "false")
        reset_settings()
        try:
            yield
        finally:
            mp.undo()
            reset_settings()


def test_the_worker_connects_to_no_private_address_by_any_name(refusing_private: None) -> None:
    from paywall.settings import get_settings

    settings = get_settings()
    assert not settings.allows_private_webhook_targets
    with receiver() as listening, worker.make_client(settings) as client:
        for url in (listening.url, listening.url.replace("127.0.0.1", "localhost")):
            with pytest.raises(httpx.ConnectError, match="not a public internet address"):
                client.post(url, content=b"{}")
        assert listening.got == []  # refused before connecting: nothing arrived
        allowed = settings.model_copy(update={"webhook_private_targets": True})
        with worker.make_client(allowed) as open_client:
            assert open_client.post(listening.url, content=b"{}").status_code == 204
        assert len(listening.got) == 1


def test_registering_a_private_url_is_a_422_that_makes_nothing(
    api: Api, issue_token: Callable[..., str], refusing_private: None
) -> None:
    tenant = f"wh-{uuid.uuid4().hex[:8]}"
    auth = {"Authorization": f"Bearer {issue_token('webhooks:read webhooks:write', tenant)}"}
    for url in ("http://127.0.0.1:9/hooks", "http://169.254.169.254/latest/meta-data"):
        made = httpx.post(
            f"{api.url}/v1/webhook-endpoints",
            json={"url": url},
            headers={**auth, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert made.status_code == 422, made.text
        assert made.headers["content-type"].startswith("application/problem+json")
        assert "not a public internet address" in made.json()["detail"]
    listed = httpx.get(f"{api.url}/v1/webhook-endpoints", headers=auth)
    assert listed.status_code == 200 and listed.json()["data"] == []
