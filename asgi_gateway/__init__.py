"""The strangler gateway: serve a Flask app and its async twins, switching per endpoint by flag."""

from __future__ import annotations

from asgi_gateway.decision import Backend, Snapshot, bucket, decide_backend
from asgi_gateway.errors import (
    FlagError,
    FlagFileError,
    FlagStoreUnavailable,
    GatewayError,
    RouteMismatch,
    UnknownEndpoint,
)
from asgi_gateway.flags import Flag, FlagFile, Guard, load_flag_file, make_flag, parse_flag_file
from asgi_gateway.gateway import FlagSource, Gateway, Principal, build_gateway
from asgi_gateway.store import FlagStore

__all__ = [
    "Backend",
    "Flag",
    "FlagError",
    "FlagFile",
    "FlagFileError",
    "FlagSource",
    "FlagStore",
    "FlagStoreUnavailable",
    "Gateway",
    "GatewayError",
    "Guard",
    "Principal",
    "RouteMismatch",
    "Snapshot",
    "UnknownEndpoint",
    "bucket",
    "build_gateway",
    "decide_backend",
    "load_flag_file",
    "make_flag",
    "parse_flag_file",
]
