"""One page type for every listing: the items and the cursor of the next page (keyset paging).

``Page`` is what a store and a service layer return; ``PageOut`` what a route answers, as
``{"items": [...], "next_cursor": "..." | null}``. A service names its own page schema by
subclassing ``PageOut[ItemOut]`` (the OpenAPI document keeps a readable name and examples).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Self, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    #: None on the last page.
    next_cursor: str | None


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page (with the same query); null at the end."
    )

    @classmethod
    def of(cls, page: Page[Any], convert: Callable[[Any], T]) -> Self:
        return cls(items=[convert(item) for item in page.items], next_cursor=page.next_cursor)
