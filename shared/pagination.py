"""Page arithmetic and the `Link` header, identical on both backends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

T = TypeVar("T")

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200


@dataclass(frozen=True, slots=True)
class PageRequest:
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of items plus the totals needed for meta and links."""

    items: Sequence[T]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def meta(self) -> dict[str, Any]:
        """The `meta` object of a paginated JSON response."""
        return {
            "page": self.page,
            "per_page": self.per_page,
            "total": self.total,
            "pages": self.pages,
        }


def link_header(path: str, params: Mapping[str, str], page: Page[Any]) -> str:
    """RFC 8288 `Link` header with first/prev/next/last, keeping the other query parameters."""
    rels: list[tuple[str, int]] = [("first", 1)]
    if 1 < page.page <= page.pages + 1:
        rels.append(("prev", page.page - 1))
    if page.page < page.pages:
        rels.append(("next", page.page + 1))
    rels.append(("last", page.pages))
    kept = [(k, v) for k, v in params.items() if k not in ("page", "per_page")]
    links = []
    for rel, number in rels:
        query = urlencode([*kept, ("page", str(number)), ("per_page", str(page.per_page))])
        links.append(f'<{path}?{query}>; rel="{rel}"')
    return ", ".join(links)
