"""The domain's exception hierarchy; each maps to one status and code of the API error shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class AppError(Exception):
    """Root of every error the domain raises on purpose; carries the API error shape."""

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        details: Sequence[dict[str, Any]] | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details or [])
        # Sent as `Retry-After` (429 and 503): when the client may usefully try again.
        self.retry_after_s = retry_after_s

    def to_dict(self) -> dict[str, Any]:
        """The JSON body both backends send for this error."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class ConfigError(AppError):
    """A setting is missing or invalid; raised at start-up, never per request."""

    code = "config_error"


class BadRequest(AppError):
    status = 400
    code = "bad_request"


class MalformedJSON(BadRequest):
    code = "malformed_json"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class NotFound(AppError):
    status = 404
    code = "not_found"


class Conflict(AppError):
    status = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(AppError):
    status = 415
    code = "unsupported_media_type"


class ValidationFailed(AppError):
    status = 422
    code = "validation_error"


class TooManyRequests(AppError):
    """Too many failed attempts from one account or address; `retry_after_s` says when to retry."""

    status = 429
    code = "too_many_requests"


class DatabaseUnavailable(AppError):
    """The database cannot be reached or read; the message names it, never its password."""

    status = 503
    code = "database_unavailable"


class ProviderError(AppError):
    """The remote calendar provider failed or answered something we cannot use."""

    status = 503
    code = "provider_unavailable"


class RemoteCalendarNotFound(ProviderError):
    """The remote calendar is not in the owner's mailbox (or no longer exists): refused."""

    status = 403
    code = "forbidden"


class ProviderTimeout(ProviderError):
    status = 504
    code = "provider_timeout"


class M365SignInFailed(AppError):
    """A Sign in with Microsoft round trip cannot be completed (state, code, or its exchange)."""

    status = 400
    code = "m365_sign_in_failed"


class M365ConsentDenied(M365SignInFailed):
    """The person (or their organisation) declined the consent Microsoft asked for."""

    status = 403
    code = "m365_consent_denied"


class M365ReconnectRequired(ProviderError):
    """The user's delegated Microsoft 365 access is gone (refresh refused, revoked, never
    connected): they must sign in with Microsoft again. Never retried on its own."""

    status = 409
    code = "m365_reconnect_required"
