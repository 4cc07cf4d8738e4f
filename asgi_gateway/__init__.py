"""The strangler gateway: serve a Flask (or any WSGI) app and its async twins, per endpoint flag.

`build_gateway(wsgi_app, routes, FlagSource(...))` is the entry point. The request path lives
in `asgi_gateway.serving`, the control plane (flag store, admin API, dashboard) in
`asgi_gateway.control`; admin-assistant's own wiring is `asgi_gateway.app` and
`asgi_gateway.endpoints`.
"""

from __future__ import annotations

from asgi_gateway.control.plane import ControlPlane
from asgi_gateway.control.store import AuditEntry, Change, FlagStore
from asgi_gateway.errors import (
    FlagConflict,
    FlagError,
    FlagFileError,
    FlagStoreUnavailable,
    GatewayError,
    RolloutConflict,
    RouteMismatch,
    UnknownEndpoint,
)
from asgi_gateway.flag_file import FlagFile, load_flag_file, parse_flag_file
from asgi_gateway.flags import (
    Compare,
    EndpointRules,
    Flag,
    Guard,
    Rollout,
    Shadow,
    drift,
    effective_flag,
    make_flag,
)
from asgi_gateway.serving.build import build_gateway
from asgi_gateway.serving.decision import Backend, Snapshot, bucket, decide_backend
from asgi_gateway.serving.gateway import Gateway
from asgi_gateway.serving.identity import Authenticate, InvalidCredentials, Principal, UserKey
from asgi_gateway.serving.mount import WSGIMount
from asgi_gateway.serving.options import FlagSource, GatewayOptions
from asgi_gateway.serving.routing import OwnPaths

__all__ = [
    "AuditEntry",
    "Authenticate",
    "Backend",
    "Change",
    "Compare",
    "ControlPlane",
    "EndpointRules",
    "Flag",
    "FlagConflict",
    "FlagError",
    "FlagFile",
    "FlagFileError",
    "FlagSource",
    "FlagStore",
    "FlagStoreUnavailable",
    "Gateway",
    "GatewayError",
    "GatewayOptions",
    "Guard",
    "InvalidCredentials",
    "OwnPaths",
    "Principal",
    "Rollout",
    "RolloutConflict",
    "RouteMismatch",
    "Shadow",
    "Snapshot",
    "UnknownEndpoint",
    "UserKey",
    "WSGIMount",
    "bucket",
    "build_gateway",
    "decide_backend",
    "drift",
    "effective_flag",
    "load_flag_file",
    "make_flag",
    "parse_flag_file",
]
