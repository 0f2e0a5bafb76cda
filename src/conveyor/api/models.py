"""Shapes shared by the routes: the page of a listing.

Collections are paginated by offset (`limit`, `offset`, with the `total` that matches the
filters); append-only logs (a run's timeline) by cursor instead, since they grow while read.
"""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

T = TypeVar("T")

MAX_LIMIT = 500

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="At most this many items.")]
Offset = Annotated[int, Query(ge=0, le=2**53, description="Skip this many items first.")]


class Page(BaseModel, Generic[T]):
    """One page of a listing."""

    items: list[T]
    total: int = Field(description="How many items match, on every page.")
    limit: int
    offset: int
