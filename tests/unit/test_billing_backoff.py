from __future__ import annotations

from assets.billing.paced_payments import BUSY, pause


def test_a_busy_answer_is_waited_out_never_sooner_than_retry_after() -> None:
    assert pause(0.3, None) == 0.3
    assert pause(12.0, 2.0) == 12.0  # the backoff has grown past what was asked
    waits = [pause(0.3, 2.0) for _ in range(200)]
    assert all(2.0 <= w <= 3.0 for w in waits)
    assert len(set(waits)) > 1  # jittered: callers told the same moment spread out


def test_only_not_now_answers_are_retried() -> None:
    # A decline (402), a refusal (422), no account (404) or a key in use (409) is an answer.
    assert {429, 503} <= BUSY
    assert not BUSY & {400, 402, 404, 409, 422}
