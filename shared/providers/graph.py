"""The `graph` provider: calendars read and written over a Microsoft Graph-compatible REST API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from json import loads as json_loads
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote, urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
from yarl import URL

from shared.delegation import current_delegate
from shared.dry_run import current_dry_run
from shared.errors import (
    M365ReconnectRequired,
    ProviderError,
    ProviderTimeout,
    RemoteCalendarNotFound,
)
from shared.providers._base import CalendarRef, ProviderEvent, RemoteCalendar
from shared.providers._graph_json import (
    event_body,
    page_items,
    parse_calendar,
    parse_event,
    utc_iso,
)
from shared.validation import is_mailbox, is_provider_id

_log = logging.getLogger(__name__)

# Graph answers these when it is throttling or briefly down; the request was not processed,
# so repeating it (even a POST) cannot create a duplicate.
_RETRY_STATUSES = frozenset({429, 503})
_BACKOFF_BASE_S = 0.05
_PAGE_SIZE = 100
# A server that keeps handing out nextLinks must not keep us paging forever.
_MAX_PAGES = 1000


class DelegatedTokens(Protocol):
    """Where a user's delegated Graph token comes from (`MicrosoftAccountService`)."""

    async def bearer(self, user_id: int, *, stale: str | None = None) -> str:
        """A usable access token of `user_id` (never `stale`, which Graph refused);
        M365ReconnectRequired when there is none."""
        ...


class _Answer(NamedTuple):
    """What the provider keeps of an HTTP response once its body is read."""

    status: int
    reason: str
    retry_after: str | None
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class GraphProvider:
    """Reads and writes events of calendars held by a Graph-compatible API, over one HTTP client."""

    name = "graph"

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout_s: float = 10.0,
        max_retries: int = 3,
        client: aiohttp.ClientSession | None = None,
        max_retry_after_s: float = 30.0,
        credentials: DelegatedTokens | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"graph base_url {base_url!r} must be an http:// or https:// URL")
        if max_retries < 0:
            raise ValueError(f"max_retries={max_retries} must be zero or more")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_retry_after_s = max_retry_after_s
        self._origin = _origin(self.base_url)
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        # Every request goes to one origin: settle its proxy once, not on every request.
        self._proxy = _env_proxy(self.base_url)
        # Built once: every request sends the same headers.
        self._headers: dict[str, str] = {"Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._client = client
        self._owns_client = client is None
        self._is_closed = False
        # Delegated access: each request carries the token of the user it is made for.
        self._credentials = credentials

    def __repr__(self) -> str:
        # No token here: reprs end up in logs and tracebacks.
        return f"GraphProvider({self.base_url!r})"

    async def list_events(
        self, calendar: CalendarRef, start: datetime, end: datetime
    ) -> list[ProviderEvent]:
        """Events of `calendar` overlapping [start, end), in UTC, ordered by start."""
        params = {
            "startDateTime": utc_iso(start, "start"),
            "endDateTime": utc_iso(end, "end"),
            "$top": str(_PAGE_SIZE),
        }
        url: str | None = f"{self._calendar_url(calendar)}/calendarView"
        events: list[ProviderEvent] = []
        pages = 0
        while url is not None:
            if pages == _MAX_PAGES:
                raise ProviderError(
                    f"graph: calendarView of calendar {calendar.id} still had more pages after "
                    f"{_MAX_PAGES}; the remote API keeps returning @odata.nextLink"
                )
            pages += 1
            page = await self._request("GET", url, params=params, calendar=calendar)
            assert page is not None  # only missing_ok requests answer None
            events.extend(parse_event(item) for item in page_items(page))
            url = self._next_link(page)
            # A nextLink carries every query parameter it needs.
            params = None
        events.sort(key=lambda e: (e.start, e.end, e.event_id))
        return events

    async def list_calendars(self, mailbox: str) -> list[RemoteCalendar]:
        """The calendars of `mailbox` (GET /users/{mailbox}/calendars, every page), by name."""
        if not is_mailbox(mailbox):
            raise ProviderError(f"graph: {mailbox[:100]!r} is not a mailbox address")
        url: str | None = f"{self.base_url}/users/{quote(mailbox, safe='@')}/calendars"
        params: dict[str, str] | None = {"$top": str(_PAGE_SIZE)}
        found: list[RemoteCalendar] = []
        for _ in range(_MAX_PAGES):
            if url is None:
                break
            page = await self._request("GET", url, params=params)
            assert page is not None  # only missing_ok requests answer None
            found.extend(parse_calendar(item, mailbox) for item in page_items(page))
            url, params = self._next_link(page), None
        else:
            raise ProviderError(
                f"graph: the calendars of {mailbox} still had more pages after {_MAX_PAGES}"
            )
        found.sort(key=lambda c: (c.name.casefold(), c.id))
        return found

    async def create_event(self, calendar: CalendarRef, event: ProviderEvent) -> str:
        """POST `event` into `calendar`; return the id the remote API assigned to it."""
        body = event_body(event)
        url = f"{self._calendar_url(calendar)}/events"
        dry = current_dry_run()
        if dry is not None:  # a dry run records the write it would make
            return dry.record_remote_write(self.name, "POST", urlsplit(url).path, body)
        created = await self._request("POST", url, json=body, calendar=calendar)
        event_id = None if created is None else created.get("id")
        if not isinstance(event_id, str) or not event_id:
            raise ProviderError(
                f"graph: creating an event in calendar {calendar.id} returned no event id "
                f"(got id={event_id!r})"
            )
        return event_id

    async def update_event(self, calendar: CalendarRef, event_id: str, event: ProviderEvent) -> str:
        """PATCH event `event_id` to equal `event`; one gone meanwhile is created anew (its id)."""
        url = f"{self._calendar_url(calendar)}/events/{quote(event_id, safe='')}"
        body = event_body(event)
        dry = current_dry_run()
        if dry is not None:
            return dry.record_remote_write(self.name, "PATCH", urlsplit(url).path, body)
        if await self._request("PATCH", url, json=body, missing_ok=True) is None:
            return await self.create_event(calendar, event)
        return event_id

    async def delete_event(self, calendar: CalendarRef, event_id: str) -> None:
        """DELETE event `event_id` of `calendar`; one already gone is fine."""
        url = f"{self._calendar_url(calendar)}/events/{quote(event_id, safe='')}"
        dry = current_dry_run()
        if dry is not None:
            dry.record_remote_write(self.name, "DELETE", urlsplit(url).path, None)
            return
        await self._request("DELETE", url, missing_ok=True)

    async def has_calendar(self, calendar: CalendarRef) -> bool:
        """True when the calendar is in `calendar.mailbox` (GET /users/{mailbox}/calendars/{id})."""
        try:
            await self._request("GET", self._calendar_url(calendar), calendar=calendar)
        except RemoteCalendarNotFound:
            return False
        return True

    async def aclose(self) -> None:
        """Close the HTTP client if this provider created it; later calls raise ProviderError."""
        self._is_closed = True
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            await client.close()

    def _calendar_url(self, calendar: CalendarRef) -> str:
        """`{base}/users/{mailbox}/calendars/{id}`; both parts checked, then quoted whole.

        Ids and mailboxes were validated on the way in; they are checked again here because
        a row written before that validation existed must still never reach another path.
        """
        if not calendar.provider_id:
            raise ProviderError(
                f"calendar {calendar.id} has no provider_id; a graph calendar needs the remote "
                "calendar's id (set provider_id on the calendar)"
            )
        if not is_provider_id(calendar.provider_id):
            raise ProviderError(
                f"calendar {calendar.id} has an invalid provider_id "
                f"{calendar.provider_id[:100]!r}; set a valid remote calendar id"
            )
        if not calendar.mailbox or not is_mailbox(calendar.mailbox):
            raise ProviderError(
                f"calendar {calendar.id}: its owner has no valid mailbox "
                f"({str(calendar.mailbox)[:100]!r}); set one with 'users set-mailbox'"
            )
        # Graph ids are base64-like and may hold '/', '+' or '=': quoted with nothing safe,
        # each part stays one path segment.
        mailbox = quote(calendar.mailbox, safe="@")
        return f"{self.base_url}/users/{mailbox}/calendars/{quote(calendar.provider_id, safe='')}"

    def _next_link(self, page: Mapping[str, Any]) -> str | None:
        link = page.get("@odata.nextLink")
        if link is None:
            return None
        if not isinstance(link, str) or _origin(link) != self._origin:
            # Following a link to another host would hand it our bearer token.
            raise ProviderError(
                f"graph: refusing @odata.nextLink {str(link)[:200]!r}: it is not on {self._origin}"
            )
        return link

    def _http(self) -> aiohttp.ClientSession:
        if self._is_closed:
            raise ProviderError(
                "graph provider is closed; get a fresh one from the provider registry"
            )
        if self._client is None:
            # Created on first use so its connections belong to the loop that runs the requests.
            self._client = aiohttp.ClientSession(timeout=self._timeout)
        return self._client

    async def _request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        calendar: CalendarRef | None = None,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        """The JSON answer; None for a 404 when `missing_ok` (an event already gone)."""
        where = f"{method} {urlsplit(url).path}"
        # Our URLs are quoted already (ids may hold '/'), and a nextLink is used as sent.
        target = URL(url, encoded=True)
        headers, token = await self._authorization()
        attempts = self.max_retries + 1
        renewed = False
        for attempt in range(attempts):
            try:
                async with self._http().request(
                    method,
                    target,
                    params=params,
                    json=json,
                    headers=headers,
                    timeout=self._timeout,
                    proxy=self._proxy,
                ) as response:
                    answer = _Answer(
                        response.status,
                        response.reason or "",
                        response.headers.get("Retry-After"),
                        await response.read(),
                    )
            except TimeoutError as exc:
                # Not retried: the server may have acted on it, and the caller's budget is spent.
                raise ProviderTimeout(
                    f"graph: {where} did not answer within {self.timeout_s:g}s "
                    f"({type(exc).__name__})"
                ) from exc
            except aiohttp.ClientError as exc:
                raise ProviderError(
                    f"graph: {where} failed: {type(exc).__name__}: {_redact(str(exc), token)}"
                ) from exc
            if answer.status in _RETRY_STATUSES and attempt + 1 < attempts:
                delay_s = self._retry_delay_s(answer, attempt)
                _log.warning(
                    "graph: %s answered %d; retry %d of %d in %.2fs",
                    where,
                    answer.status,
                    attempt + 1,
                    self.max_retries,
                    delay_s,
                )
                await asyncio.sleep(delay_s)
                continue
            if answer.status == 404 and missing_ok:
                return None
            if answer.status == 404 and calendar is not None:
                raise RemoteCalendarNotFound(
                    f"calendar {calendar.id}: the remote calendar {calendar.provider_id!r} is "
                    f"not in mailbox {calendar.mailbox} or no longer exists (graph: {where} "
                    f"answered 404: {_redact(_remote_message(answer), token)})"
                )
            if answer.status == 403 and self._credentials is not None:
                raise RemoteCalendarNotFound(
                    f"graph: {where} answered 403: the signed-in user's Microsoft 365 account "
                    f"may not reach this mailbox ({_redact(_remote_message(answer), token)})"
                )
            if answer.status == 401 and self._credentials is not None and not renewed:
                # Microsoft ended the token before its time (a revoked session): renew it
                # once; a refused renewal asks the user to reconnect.
                headers, token = await self._authorization(stale=token)
                renewed = True
                continue
            if answer.status == 401 and self._credentials is not None:
                raise M365ReconnectRequired(
                    f"graph: {where} answered 401: Microsoft refused the user's token "
                    f"({_redact(_remote_message(answer), token)}); reconnect Microsoft 365"
                )
            return self._decode(answer, where, token, attempts=attempt + 1)
        raise AssertionError("unreachable: the last attempt always returns or raises")

    async def _authorization(
        self, *, stale: str | None = None
    ) -> tuple[Mapping[str, str], str | None]:
        """The headers of a request and the token in them: the delegated token of the user
        the call is made for (see `shared.delegation`; renewed when it is `stale`), else the
        static token."""
        if self._credentials is None:
            return self._headers, self._token
        user_id = current_delegate()
        if user_id is None:
            if self._token:  # application-only access, for calls on behalf of no one
                return self._headers, self._token
            raise ProviderError(
                "graph: this call is made for no user, and Microsoft 365 access is delegated "
                "(each user's own token); set AA_GRAPH_TOKEN for application-only access"
            )
        token = await self._credentials.bearer(user_id, stale=stale)
        return {"Accept": "application/json", "Authorization": f"Bearer {token}"}, token

    def _decode(
        self, answer: _Answer, where: str, token: str | None, *, attempts: int
    ) -> dict[str, Any]:
        status = answer.status
        if not 200 <= status < 300:
            tried = f" after {attempts} attempts" if status in _RETRY_STATUSES else ""
            message = _redact(_remote_message(answer), token)
            raise ProviderError(f"graph: {where} answered {status}{tried}: {message}")
        if status == 204 or not answer.body.strip():
            return {}  # DELETE answers 204 No Content
        try:
            body = json_loads(answer.body)
        except ValueError as exc:
            raise ProviderError(
                f"graph: {where} answered {status} with a body that is not JSON: "
                f"{_redact(answer.text[:200], token)!r}"
            ) from exc
        if not isinstance(body, dict):
            raise ProviderError(
                f"graph: {where} answered {status} with a JSON {type(body).__name__}, "
                "expected an object"
            )
        return body

    def _retry_delay_s(self, answer: _Answer, attempt: int) -> float:
        header = answer.retry_after
        delay_s = _parse_retry_after_s(header) if header else None
        if delay_s is None:
            delay_s = _BACKOFF_BASE_S * 2**attempt
        return min(max(delay_s, 0.0), self.max_retry_after_s)


def _redact(text: str, token: str | None) -> str:
    # A misbehaving server may echo our headers back in an error body.
    return text.replace(token, "[redacted]") if token else text


def _env_proxy(url: str) -> str | None:
    """The proxy that HTTP_PROXY / HTTPS_PROXY name for `url`, unless NO_PROXY exempts its host."""
    parts = urlsplit(url)
    if parts.hostname and proxy_bypass(parts.hostname):
        return None
    return getproxies().get(parts.scheme)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _parse_retry_after_s(value: str) -> float | None:
    """Retry-After as seconds (or an HTTP date); None when it is neither."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return (moment - datetime.now(UTC)).total_seconds()


def _remote_message(answer: _Answer) -> str:
    """The `error.message` of a Graph error body, else the start of the raw body."""
    try:
        body = json_loads(answer.body)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        code, message = error.get("code"), error.get("message")
        if isinstance(message, str) and message:
            return f"{code}: {message}" if isinstance(code, str) and code else message
    text = answer.text.strip()[:200]
    return text or answer.reason or "no error message"
