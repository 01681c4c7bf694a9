"""OAuth errors in RFC 6749's JSON shape: what OAuth clients parse at the token endpoint."""

from __future__ import annotations

from fastapi.responses import JSONResponse

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """`{"error": ..., "error_description": ...}`; 400 unless the client failed to authenticate.

    `commit` keeps the transaction's writes although the request fails: replaying a used
    code or a rotated refresh token must revoke the family *and* answer invalid_grant.
    """

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        headers: dict[str, str] | None = None,
        commit: bool = False,
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}
        self.commit = commit

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers={**NO_STORE, **self.headers},
        )


def invalid_client(description: str) -> OAuthError:
    # RFC 6749 5.2: 401 with a challenge for the scheme the client should use.
    return OAuthError(
        "invalid_client",
        description,
        status=401,
        headers={"WWW-Authenticate": 'Basic realm="paywall"'},
    )


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_grant(description: str, *, commit: bool = False) -> OAuthError:
    return OAuthError("invalid_grant", description, commit=commit)


def too_many_attempts(retry_after: int) -> OAuthError:
    # RFC 6749 has no code for this; 429 with Retry-After is what HTTP clients act on, and
    # temporarily_unavailable (registered by RFC 6749 11.4) says "retry later", where
    # invalid_client would tell a legitimate client its credentials are wrong.
    return OAuthError(
        "temporarily_unavailable",
        f"too many failed client authentications; retry after {retry_after} s",
        status=429,
        headers={"Retry-After": str(retry_after)},
    )
