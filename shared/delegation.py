"""Whose delegated Microsoft 365 token a Graph call uses: the user a request or job acts for.

Set where a request's service call or a scheduled run starts (`acting_for`), read by the
Graph provider when it sends a request. A context variable, so it follows the call through
awaits and the bridge, and two requests on one loop never see each other's user.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any, Concatenate, ParamSpec, TypeVar

__all__ = ["acting_for", "as_caller", "current_delegate"]

_P = ParamSpec("_P")
_R = TypeVar("_R")
_S = TypeVar("_S")


_delegate: ContextVar[int | None] = ContextVar("aa_graph_delegate", default=None)


@contextlib.contextmanager
def acting_for(user_id: int | None) -> Iterator[None]:
    """Within the block, Graph calls use the delegated token of user `user_id`."""
    token = _delegate.set(user_id)
    try:
        yield
    finally:
        _delegate.reset(token)


def current_delegate() -> int | None:
    """The user whose token Graph calls use now; None outside any `acting_for` block."""
    return _delegate.get()


def as_caller(
    method: Callable[Concatenate[_S, Any, _P], Awaitable[_R]],
) -> Callable[Concatenate[_S, Any, _P], Awaitable[_R]]:
    """A service method `(self, actor, ...)` whose Graph calls use the actor's token.

    With no actor (the command line, a scheduled run) the delegate already set stays.
    """

    @functools.wraps(method)
    async def run_as_caller(self: _S, actor: Any, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        user_id = actor.user_id if actor is not None else current_delegate()
        with acting_for(user_id):
            return await method(self, actor, *args, **kwargs)

    return run_as_caller
