"""HTML forms as API bodies: posted fields become the JSON the shared parsers read, and their
422 details become messages next to each field, so a page validates exactly like the API."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import flash

from shared.errors import AppError


@dataclass(slots=True)
class FormState:
    """What a form shows: the values as typed, and a message per field that failed."""

    values: Mapping[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def value(self, name: str, default: Any = "") -> Any:
        """The typed value of `name`, or `default` on a fresh form."""
        found = self.values.get(name)
        return default if found is None else found


def form_errors(exc: AppError, fields: Iterable[str]) -> dict[str, str]:
    """The error's details by field; a detail naming no field of the form goes under ""."""
    known = set(fields)
    errors: dict[str, str] = {}
    for detail in exc.details:
        name = str(detail.get("field", ""))
        key = name if name in known else ""
        message = str(detail.get("message", ""))
        if key == "" and name:
            message = f"{name} {message}"
        errors[key] = f"{errors[key]}; {message}" if key in errors else message
    if not exc.details:
        errors[""] = exc.message
    return errors


def flash_error(exc: AppError, prefix: str = "") -> None:
    """Flash an error with its details, for actions that answer with a redirect."""
    details = "; ".join(f"{d.get('field', '')} {d.get('message', '')}" for d in exc.details)
    message = f"{exc.message}: {details}" if details else exc.message
    flash(f"{prefix}{message}", "error")


def whole_number(raw: str | None) -> Any:
    """A typed number as the API's JSON would carry it (a string stays one, so it is refused)."""
    text = (raw or "").strip()
    if text.lstrip("-").isdigit():
        return int(text)
    return text


def word_list(raw: str | None) -> list[str]:
    """Comma-separated words ("Private, Lunch") as a list."""
    return [part.strip() for part in (raw or "").split(",") if part.strip()]


def is_checked(form: Mapping[str, str], name: str) -> bool:
    """Whether a checkbox was ticked (browsers send `on`, or the box's value)."""
    return form.get(name) not in (None, "", "off")
