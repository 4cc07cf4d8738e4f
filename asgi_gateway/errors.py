"""The gateway's exception hierarchy."""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class FlagFileError(GatewayError):
    """The flag file is unreadable or invalid; the message names file, line and reason."""


class FlagError(GatewayError):
    """A runtime flag change is invalid (unknown endpoint, bad mode, percent out of range...)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class UnknownEndpoint(FlagError):
    """No Flask endpoint has this id."""


class FlagConflict(GatewayError):
    """A compare-and-set flip lost: the flag changed since the caller read it."""


class RouteMismatch(GatewayError):
    """An async route has no Flask twin, or differs from it in URL pattern or methods."""


class FlagStoreUnavailable(GatewayError):
    """The flag tables could not be read or written."""


class RolloutConflict(GatewayError):
    """A rollout action does not fit its state (pause what is not running), or lost a race."""
