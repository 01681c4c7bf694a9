"""Kong's declarative config with the auth service's signing keys, made at deploy time.

Kong OSS's `jwt` plugin cannot read a JWKS: it verifies with one PEM per consumer secret,
chosen by the token header's `kid` (key_claim_name). So every RSA signing key that auth
publishes becomes one RS256 jwt_secret, and keys rotate as they do for the services: auth
publishes the new kid before it signs with it. The keys are never in git.
"""

from __future__ import annotations

import json

import yaml
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey

from paywall.errors import ConfigError


def kong_config(kong_yaml: str, jwks_json: str) -> str:
    """deploy/kong/kong.yaml whose one consumer trusts every RSA signing key of the JWKS."""
    try:
        keys = KeySet.import_key_set(json.loads(jwks_json)).keys
    except (JoseError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError("--jwks", f"not a JWKS: {exc}") from exc
    signing = [k for k in keys if isinstance(k, RSAKey) and k.get("use", "sig") == "sig"]
    if not signing:
        raise ConfigError("--jwks", "no RSA signing key")
    if any(key.kid is None for key in signing):
        raise ConfigError("--jwks", "a key has no kid, and Kong finds keys by kid")
    config = yaml.safe_load(kong_yaml)
    (consumer,) = config["consumers"]
    consumer["jwt_secrets"] = [
        {"key": key.kid, "algorithm": "RS256", "rsa_public_key": key.as_pem().decode()}
        for key in signing
    ]
    return yaml.safe_dump(config, sort_keys=False)
