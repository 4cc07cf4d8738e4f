"""The async twins of the legacy JSON API, exported as one list of Starlette routes.

One module per Flask blueprint; each route is named after its Flask twin's endpoint id.
"""

from __future__ import annotations

from starlette.routing import Route

from asgi_gateway.endpoints import (
    action_items,
    appointments,
    archive,
    archive_configs,
    audit,
    auth,
    calendars,
    jobs,
    tokens,
)

routes: list[Route] = [
    *auth.routes,
    *calendars.routes,
    *appointments.routes,
    *archive_configs.routes,
    *archive.routes,
    *tokens.routes,
    *jobs.routes,
    *action_items.routes,
    *audit.routes,
]

__all__ = ["routes"]
