"""The web app's two grids: the clips (``/``) and every cataloged file (``/assets``).

Each builds the one dictionary its page is rendered from and its JSON twin returns, from
the same catalog queries the CLI's ``list`` and ``assets`` use, so the grid, the twin
and the command line cannot disagree. Query parameters are checked here, before any
query runs: a bad one is a :class:`~core.api.errors.RequestError` (a 400 with one line).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from sqlmodel import Session
from starlette.datastructures import URL
from starlette.requests import Request

from catalog.asset_listing import LISTED_KINDS, AssetFilter, LineageSummary, lineage_summaries
from catalog.asset_listing import list_assets as list_asset_rows
from catalog.models import Asset, Generation
from catalog.organise import SORTS, Organised, organised_by_id, tag_names
from catalog.queries import (
    PROVENANCE_STATES,
    ClipFilter,
    clip_facets,
    latest_states,
    list_generations,
)
from core.api.errors import RequestError
from core.views.report import asset_dict, generation_summary

PAGE_SIZE = 48
MAX_PAGE_SIZE = 200
MAX_PAGE_NUMBER = 10_000  # title and rating sorts page by number (an offset: keep it sane)
MAX_MIME = 100  # as long as the catalog's column

_Row = TypeVar("_Row", Generation, Asset)


def servable(asset: Asset) -> bool:
    """Whether the web app may serve this file: it is stored (a placeholder, known only
    from another file's credentials, has nothing to serve)."""
    return bool(asset.sha256) and not asset.is_placeholder


def media_url(request: Request, asset_id: str) -> str:
    return str(request.url_for("media", asset_id=asset_id))


def library_data(session: Session, request: Request) -> dict[str, Any]:
    """The clips grid: newest first, filtered, paged by keyset cursors."""
    params = request.query_params
    provenance = _choice(request, "provenance", PROVENANCE_STATES, "provenance state")
    paging = _Paging.of(request)
    tag = params.get("tag") or None
    filters = ClipFilter(
        model=params.get("model") or None,
        backend=params.get("backend") or None,
        status=params.get("status") or None,
        text=params.get("q") or None,
        provenance=provenance,
        cursor=paging.cursor,
        oldest_first=paging.after is not None,
        limit=paging.size + 1,  # one more tells whether another page follows
        tags=(tag,) if tag else (),
        sort=paging.sort,
        offset=paging.offset,
    )
    rows, links = paging.page(request, list_generations(session, filters))
    states = latest_states(session, [g.output_asset_id for g in rows])
    extras = organised_by_id(session, [g.id for g in rows], clips=True)
    return {
        "clips": [_card(request, g, states, extras[g.id]) for g in rows],
        **links,
        "filters": {
            "tag": tag,
            "sort": paging.sort,
            "q": filters.text,
            "model": filters.model,
            "backend": filters.backend,
            "status": filters.status,
            "provenance": provenance,
            "n": paging.size,
        },
        "facets": {
            **clip_facets(session),
            "provenance": list(PROVENANCE_STATES),
            "tag": tag_names(session),
            "sort": list(SORTS),
        },
    }


def assets_data(session: Session, request: Request) -> dict[str, Any]:
    """The assets grid: every cataloged file (stills, clips' videos, imports, and
    placeholders, marked), with the filters of ``reelvault assets``, paged as the clips."""
    params = request.query_params
    kind = _choice(request, "kind", LISTED_KINDS, "kind")
    provenance = _choice(request, "provenance", PROVENANCE_STATES, "provenance state")
    mime = params.get("mime") or None
    if mime is not None and len(mime) > MAX_MIME:
        raise RequestError(f"mime must be at most {MAX_MIME} characters")
    paging = _Paging.of(request)
    tag = params.get("tag") or None
    filters = AssetFilter(
        kind=kind,
        mime=mime,
        provenance=provenance,
        tags=(tag,) if tag else (),
        text=params.get("q") or None,
        sort=paging.sort,
        limit=paging.size + 1,
        offset=paging.offset,
        cursor=paging.cursor,
        oldest_first=paging.after is not None,
        placeholders=True,
    )
    rows, links = paging.page(request, list_asset_rows(session, filters))
    ids = [a.id for a in rows]
    summaries = lineage_summaries(session, ids)
    extras = organised_by_id(session, ids, clips=False)
    states = latest_states(session, ids)
    cards = [_asset_card(request, a, summaries[a.id], extras[a.id], states) for a in rows]
    return {
        "assets": cards,
        **links,
        "filters": {
            "kind": kind,
            "mime": mime,
            "provenance": provenance,
            "tag": tag,
            "q": filters.text,
            "sort": paging.sort,
            "n": paging.size,
        },
        "facets": {
            "kind": list(LISTED_KINDS),
            "provenance": list(PROVENANCE_STATES),
            "tag": tag_names(session),
            "sort": list(SORTS),
        },
    }


class _Paging:
    """A grid's paging, from its query: ``n`` a page; in created order keyset cursors
    (``before``/``after`` a row's id, fast however deep), in the other sorts ``page``."""

    def __init__(
        self, size: int, sort: str, number: int, before: str | None, after: str | None
    ) -> None:
        self.size, self.sort, self.number = size, sort, number
        self.before, self.after = before, after

    @classmethod
    def of(cls, request: Request) -> _Paging:
        params = request.query_params
        before, after = params.get("before") or None, params.get("after") or None
        if before and after:
            raise RequestError("give either before or after, not both")
        size = _whole_number(request, "n", PAGE_SIZE, MAX_PAGE_SIZE)
        sort = params.get("sort") or "created"
        if sort not in SORTS:
            raise RequestError(f"unknown sort {sort!r} (choose {', '.join(SORTS)})")
        number = _whole_number(request, "page", 1, MAX_PAGE_NUMBER)
        if sort != "created" and (before or after):
            raise RequestError("before and after page the created order; other sorts use page")
        return cls(size, sort, number, before, after)

    @property
    def cursor(self) -> str | None:
        return self.before or self.after

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    def page(
        self, request: Request, fetched: Sequence[_Row]
    ) -> tuple[list[_Row], dict[str, str | None]]:
        """This page's rows (newest first) from one fetched past it, and the links to the
        pages either side (``older``/``newer``), ``None`` where there is none."""
        more = len(fetched) > self.size
        rows = list(fetched[: self.size])
        if self.after:
            rows.reverse()
        base = request.url.remove_query_params(["before", "after", "page"])
        if self.sort != "created":
            older = _link(base, page=self.number + 1) if more else None
            newer = _link(base, page=self.number - 1) if self.number > 1 else None
            return rows, {"older": older, "newer": newer}
        has_older = bool(rows) and (self.after is not None or more)
        has_newer = bool(rows) and (self.before is not None or (self.after is not None and more))
        older = _link(base, before=rows[-1].id) if has_older else None
        newer = _link(base, after=rows[0].id) if has_newer else None
        return rows, {"older": older, "newer": newer}


def _link(base: URL, **params: Any) -> str:
    return str(base.include_query_params(**params))  # a twin pages its twins


def _choice(request: Request, name: str, choices: Sequence[str], what: str) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and value not in choices:
        raise RequestError(f"unknown {what} {value!r} (choose {', '.join(choices)})")
    return value


def _whole_number(request: Request, name: str, default: int, most: int) -> int:
    text = request.query_params.get(name, str(default))
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise RequestError(f"{name} must be a whole number from 1 to {most}")
    return int(text)


def _card(
    request: Request, g: Generation, states: Mapping[str, str], extra: Organised
) -> dict[str, Any]:
    return {
        **generation_summary(g),
        **extra.as_dict(),
        "provenance": states.get(g.output_asset_id or ""),
        "page": str(request.url_for("clip", clip_id=g.id)),
        "thumbnail": media_url(request, g.thumbnail_asset_id) if g.thumbnail_asset_id else None,
    }


def _asset_card(
    request: Request,
    asset: Asset,
    summary: LineageSummary,
    extra: Organised,
    states: Mapping[str, str],
) -> dict[str, Any]:
    """One file of the assets grid: its facts (no path: see :mod:`core.web.app`), what a
    person added, its lineage summary, its page, and the picture to show for it."""
    stored = servable(asset)
    if asset.kind == "video" and summary.clip:
        page = request.url_for("clip", clip_id=summary.clip)
    elif asset.kind == "image":
        page = request.url_for("still", asset_id=asset.id)
    else:
        page = request.url_for("asset", asset_id=asset.id)
    if not stored:
        thumbnail = None
    elif asset.kind == "image":
        thumbnail = media_url(request, asset.id)
    else:  # a video shows its clip's thumbnail, when it has one
        thumbnail = media_url(request, summary.poster) if summary.poster else None
    return {
        **asset_dict(asset),
        **extra.as_dict(),
        "provenance": states.get(asset.id),
        "parents": summary.parents,
        "children": summary.children,
        "clip": summary.clip if asset.kind == "video" else None,
        "page": str(page),
        "media": media_url(request, asset.id) if stored else None,
        "thumbnail": thumbnail,
    }
