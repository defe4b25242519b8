"""Answers shared by the routes: a page serialised once, and the error statuses every route has.

FastAPI would validate a returned model again and then serialise it; a list page is built from
trusted rows and serialised straight to JSON bytes by pydantic instead (``json_page``), or, for
the busiest list, from plain rows by orjson without building models at all (``json_rows``; a
test holds its bytes equal to the model's). The routes still declare ``response_model``, so the
OpenAPI schema is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import Response
from pydantic import BaseModel

if TYPE_CHECKING:
    from collector.api.crud import Listing
    from collector.api.deps import Pagination


class JsonBytes(Response):
    media_type = "application/json"


def json_page(
    model: type[BaseModel], data: Sequence[BaseModel], listing: Listing, page: Pagination
) -> Response:
    """``model`` (a ``Page[...]``) of ``data`` as JSON bytes, with the count and cursor."""
    built = model(
        data=data,
        count=listing.count,
        limit=page.limit,
        offset=page.offset,
        next_cursor=listing.next_cursor,
    )
    return JsonBytes(built.model_dump_json())


def json_rows(fields: Sequence[str], listing: Listing, page: Pagination) -> Response:
    """A page of plain rows (values in the order of ``fields``) as the ``Page[...]`` JSON.

    The rows' values must already be what the model would hold (ints, strings, enums, UTC
    datetimes): they are written, not validated. UTC is written ``Z``, as pydantic does.
    """
    body = {
        "data": [dict(zip(fields, row, strict=True)) for row in listing.items],
        "count": listing.count,
        "limit": page.limit,
        "offset": page.offset,
        "next_cursor": listing.next_cursor,
    }
    return JsonBytes(orjson.dumps(body, option=orjson.OPT_UTC_Z))


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"detail": {"type": "string"}},
                    "required": ["detail"],
                }
            }
        },
    }


Responses = dict[int | str, dict[str, Any]]

UNAUTHORIZED: Responses = {401: _error("Missing or wrong bearer token")}
BUSY: Responses = {
    503: {
        **_error("Busy or the database is unreachable; retry after `Retry-After` seconds"),
        "headers": {
            "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
        },
    }
}
NOT_FOUND: Responses = {404: _error("No such item")}
CONFLICT: Responses = {409: _error("Clashes with what is stored; `detail` says why")}
