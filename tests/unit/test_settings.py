from __future__ import annotations

import pytest
from pydantic import ValidationError

from paywall.settings import LOCAL_SECRETS, Settings


def make(**env: str) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[call-arg, arg-type]


def test_environment_wins_over_the_stack_file(tmp_path, monkeypatch) -> None:
    env_file = tmp_path / "stack.env"
    env_file.write_text("DATABASE_URL=postgresql://postgres@127.0.0.1:1111/paywall\n")
    assert Settings(_env_file=env_file).database_url.endswith(":1111/paywall")  # type: ignore[call-arg, union-attr]
    monkeypatch.setenv("DATABASE_URL", "postgresql://rds.example:5432/paywall")
    assert Settings(_env_file=env_file).database_url == "postgresql://rds.example:5432/paywall"  # type: ignore[call-arg]


def test_blank_url_means_unset() -> None:
    assert make(REDIS_URL="  ").redis_url is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://root@localhost/db"),
        ("REDIS_URL", "http://localhost:6379"),
        ("STRIPE_API_KEY", "pk_test_123"),
        ("PAYWALL_ENV", "staging"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(ValidationError) as info:
        make(**{name: value})
    assert info.value.errors()[0]["loc"] == (name,)


def test_masked_hides_secrets_and_url_passwords() -> None:
    masked = make(
        DATABASE_URL="postgresql://app:s3cret-pw@db:5432/paywall",
        STRIPE_API_KEY="sk_live_0123456789abcdef",
        DD_API_KEY="short",
    ).masked()
    assert masked["DATABASE_URL"] == "postgresql://app:****@db:5432/paywall"
    assert masked["STRIPE_API_KEY"] == "sk_l…****"
    assert masked["DD_API_KEY"] == "****"
    assert masked["REDIS_URL"] == "(unset)"


def test_production_refuses_public_local_secrets_where_they_are_used() -> None:
    from paywall.errors import ConfigError

    # A pod starts with only the secrets it needs...
    production = make(PAYWALL_ENV="production")
    assert production.is_production
    # ...and a public local default is refused the moment something uses it.
    for name in LOCAL_SECRETS:
        with pytest.raises(ConfigError, match=name):
            production.own_secret(name)
    with pytest.raises(ConfigError, match="BILLING_CLIENT_SECRET"):
        production.service_client("billing")
    own = make(PAYWALL_ENV="production", PAYMENT_CLIENT_SECRET="p", PAYMENT_CLIENT_ID="svc-p")
    assert own.service_client("payment")[0] == "svc-p"
    assert own.service_client("payment")[1].get_secret_value() == "p"
    # Locally the defaults are fine.
    local = make().service_client("billing")[1].get_secret_value()
    assert local == LOCAL_SECRETS["BILLING_CLIENT_SECRET"]


PRODUCTION = {
    "PAYWALL_ENV": "production",
    "LAKE_PII_SALT": "s",
    "REGISTRATION_CLIENT_SECRET": "r",
    "BILLING_CLIENT_SECRET": "b",
}


def test_topic_durability_is_three_copies_in_production_and_the_local_brokers_one_else() -> None:
    local, prod = make(), make(**PRODUCTION)
    assert (local.replication_factor, local.min_insync_replicas) == (1, 1)
    assert (prod.replication_factor, prod.min_insync_replicas) == (3, 2)
    given = make(**PRODUCTION, KAFKA_REPLICATION_FACTOR="5", KAFKA_MIN_INSYNC_REPLICAS="3")
    assert (given.replication_factor, given.min_insync_replicas) == (5, 3)


@pytest.mark.parametrize(
    "env",
    [
        {"KAFKA_MIN_INSYNC_REPLICAS": "2"},  # above the local replication factor 1
        {**PRODUCTION, "KAFKA_MIN_INSYNC_REPLICAS": "1"},  # one broker lost loses events
        {**PRODUCTION, "KAFKA_REPLICATION_FACTOR": "1"},  # below the default 2 in sync
    ],
)
def test_topic_durability_that_cannot_hold_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="KAFKA_MIN_INSYNC_REPLICAS"):
        make(**env)


def test_billings_stripe_budget_is_stripes_limit_for_the_environments_mode() -> None:
    assert make().stripe_ops_per_second == 25  # test mode
    assert make(**PRODUCTION).stripe_ops_per_second == 100  # live mode
    assert make(**PRODUCTION, STRIPE_RATE_LIMIT="40").stripe_ops_per_second == 40
    with pytest.raises(ValidationError) as info:
        make(STRIPE_RATE_LIMIT="0")
    assert info.value.errors()[0]["loc"] == ("STRIPE_RATE_LIMIT",)
