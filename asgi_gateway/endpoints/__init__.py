"""The async twins of the legacy JSON API, exported as one list of Starlette routes."""

from __future__ import annotations

from starlette.routing import Route

from asgi_gateway.endpoints import appointments

routes: list[Route] = [*appointments.routes]

__all__ = ["routes"]
