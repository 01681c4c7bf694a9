"""A prorated cancellation's credit: the unused seconds of the paid period at pricing's one
rounding rule, so credit plus the used share is the period's price within one cent."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from paywall import pricing
from transactional.billing.credit_cancellation import unused_share
from transactional.billing.credit_models import CancellationCredit

START = datetime(2026, 1, 1, tzinfo=UTC)


def asked(length: int, elapsed: int) -> CancellationCredit:
    return CancellationCredit(
        subscription_id=uuid.uuid4(),
        period_start=START,
        period_end=START + timedelta(seconds=length),
        at=START + timedelta(seconds=elapsed),
    )


@given(
    price=st.integers(min_value=0, max_value=10_000_000),
    length=st.integers(min_value=1, max_value=366 * 86400),
    data=st.data(),
)
def test_credit_plus_the_used_share_is_the_period_price_within_a_cent(
    price: int, length: int, data: st.DataObject
) -> None:
    elapsed = data.draw(st.integers(min_value=0, max_value=length))
    credit = unused_share(price, asked(length, elapsed))
    used = pricing.share(price, elapsed, length)
    assert 0 <= credit <= price
    assert abs(credit + used - price) <= 1


def test_halfway_through_a_30_day_period_half_is_given_back() -> None:
    assert unused_share(900, asked(30 * 86400, 15 * 86400)) == 450
    assert unused_share(900, asked(30 * 86400, 0)) == 900
    assert unused_share(900, asked(30 * 86400, 30 * 86400)) == 0
