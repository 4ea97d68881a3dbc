"""``reelvault serve``: the library as a local, read-only web app (Starlette + Jinja2).

Pages: the library grid (``/``), one clip (``/clips/ID``), one source still and every
clip made from it (``/stills/ID``), and a lineage in any format (``/lineage/ID``). Every
page has a JSON twin at the same address with ``?format=json``, built from the same
dictionary the page is rendered from, so the two cannot disagree.

Safety, by construction rather than by care:

- files are served only by asset id, through the catalog row's SHA-256 and
  the store's name for that hash (:mod:`core.web.media`); no part of a request ever
  becomes a path or a key, so nothing outside the content store (nor a half-written
  file in it) can be read (the row's ``stored_path``, which
  :func:`core.views.report.asset_dict` shows the CLI, is not used here on purpose:
  the hash alone decides which file is opened);
- pages and their JSON twins never say where a file lies on this machine (a path under
  the user's home): the :mod:`core.views.report` functions are called without the store;
- the catalog is opened read-only (:mod:`catalog.readonly`) and only GET/HEAD routes exist;
- the server binds to loopback unless told otherwise, and then only answers requests
  addressed to a loopback name, which stops DNS-rebinding pages from reading it;
- pages run no script at all, and say so in their Content Security Policy.

Video seeking works because media answers HTTP Range requests with ``206 Partial
Content``: from the local store through Starlette's ``FileResponse``, from a bucket as a
ranged GET streamed through (:mod:`core.web.media`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from functools import partial
from typing import Any

import jinja2
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.datastructures import URL, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog.lookups import asset_by_id
from catalog.models import Asset, Generation
from catalog.organise import SORTS, Organised, organised, organised_by_id, tag_names
from catalog.queries import (
    PROVENANCE_STATES,
    ClipFilter,
    clip_facets,
    get_asset,
    get_generation,
    latest_states,
    list_generations,
)
from catalog.queries import resolve as resolve_id
from catalog.readonly import CatalogReader
from catalog.search import MAX_SEARCH_TEXT
from core.api.errors import AmbiguousIdError, NotFoundError, ReelvaultError, RequestError
from core.api.times import timestamp_text
from core.host.app import Reelvault
from core.library.files import download_name
from core.views import json_text
from core.views import lineage as lineage_render
from core.views.checks import latest_per_verifier
from core.views.exports import lineage_prov, prov_json
from core.views.report import (
    asset_dict,
    generation_dict,
    generation_summary,
    ingredient_failure_lines,
    lineage_dict,
    variant_dicts,
    verification_dicts,
)
from core.web.media import media_response

PAGE_SIZE = 48
MAX_PAGE_SIZE = 200
MAX_PAGE_NUMBER = 10_000  # title and rating sorts page by number (an offset: keep it sane)
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
LINEAGE_FORMATS = {
    "svg": "image/svg+xml",
    "json": "application/json",
    "dot": "text/vnd.graphviz; charset=utf-8",
    "mermaid": "text/plain; charset=utf-8",
    "prov-json": "application/json",
}
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
IMMUTABLE = "public, max-age=31536000, immutable"  # a file's address is its content


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("core.web", "templates"),
        autoescape=True,  # HTML and SVG alike
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = _when
    env.filters["pretty_json"] = lambda v: json.dumps(v, indent=2, sort_keys=True)
    env.filters["latest_per_verifier"] = latest_per_verifier
    env.filters["ingredient_failures"] = ingredient_failure_lines
    return env


def _when(value: str | None) -> str:
    return timestamp_text(value)


class _SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response (a pure ASGI middleware, so file
    responses keep streaming)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class DeepJSONResponse(JSONResponse):
    """Starlette's compact JSON, written without recursion: a lineage nests two levels per
    remix, and :func:`json.dumps` gives up at about a thousand."""

    def render(self, content: Any) -> bytes:
        text = json_text.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode("utf-8")


def create_app(app: Reelvault, allowed_hosts: tuple[str, ...] = LOOPBACK_NAMES) -> Starlette:
    """The ASGI application for one library."""
    reader = CatalogReader(app.engine)
    templates = Jinja2Templates(env=_environment())

    def page(request: Request, template: str, data: Mapping[str, Any], **extra: Any) -> Response:
        if _wants_json(request):
            return DeepJSONResponse(data)
        twin = str(request.url.include_query_params(format="json"))
        context = {**data, **extra, "json_twin": twin, "max_search": MAX_SEARCH_TEXT}
        return templates.TemplateResponse(request, template, context)

    def library(request: Request) -> Response:
        with reader.session() as session:
            data = _library_data(session, request)
        return page(request, "library.html", data)

    def clip(request: Request) -> Response:
        with reader.session() as session:
            generation = get_generation(session, request.path_params["clip_id"])
            data = generation_dict(session, generation)
            data.update(organised(session, generation).as_dict())
            family = lineage_dict(session, generation)
            variants = variant_dicts(session, generation)
        data["lineage"] = family
        data["urls"] = _clip_urls(request, data)
        data["variants"] = [_variant_card(request, v) for v in variants]
        svg = _lineage_svg(templates.env, request, family)
        return page(request, "clip.html", data, clip=data, svg=svg)

    def still(request: Request) -> Response:
        with reader.session() as session:
            asset = get_asset(session, request.path_params["asset_id"])
            family = lineage_dict(session, asset)
            checks = verification_dicts(session, asset.id)
        data = {
            "asset": {**asset_dict(asset), "verifications": checks},
            "url": _media_url(request, asset.id) if _servable(asset) else None,
            "lineage": family,
        }
        svg = _lineage_svg(templates.env, request, family)
        return page(request, "still.html", data, svg=svg)

    def lineage(request: Request) -> Response:
        fmt = request.query_params.get("format", "svg")
        if fmt not in LINEAGE_FORMATS:
            choices = ", ".join(LINEAGE_FORMATS)
            raise RequestError(f"unknown lineage format {fmt!r} (choose {choices})")
        with reader.session() as session:
            target = resolve_id(session, request.path_params["identifier"])
            if fmt == "prov-json":
                document = prov_json(lineage_prov(session, target))
                return Response(document, media_type=LINEAGE_FORMATS[fmt])
            family = lineage_dict(session, target)
        if fmt == "json":
            return DeepJSONResponse(family)
        renderers: dict[str, Callable[[Mapping[str, Any]], str]] = {
            "svg": partial(_lineage_svg, templates.env, request),
            "dot": lineage_render.to_dot,
            "mermaid": lineage_render.to_mermaid,
        }
        render = renderers[fmt]
        return Response(render(family), media_type=LINEAGE_FORMATS[fmt])

    def media(request: Request) -> Response:
        with reader.session() as session:
            asset = asset_by_id(session, request.path_params["asset_id"])
            name = download_name(session, asset) if asset is not None else ""
        if asset is None or not _servable(asset):
            raise NotFoundError("no stored file has that id")
        assert asset.sha256 is not None
        # Named as ``reelvault get`` names it; ?download=1 asks the browser to save it.
        disposition = "attachment" if request.query_params.get("download") else "inline"
        return media_response(
            app.store,
            asset.sha256,
            asset.mime,
            {
                "cache-control": IMMUTABLE,
                "content-disposition": f'{disposition}; filename="{name}"',
            },
            asset.id,
            request.headers.get("range"),
        )

    async def error(request: Request, exc: Exception) -> Response:
        status = _status(exc)
        message = exc.detail if isinstance(exc, HTTPException) else str(exc)
        if _wants_json(request) or request.url.path.startswith("/media/"):
            return JSONResponse({"error": message}, status_code=status)
        return templates.TemplateResponse(
            request, "error.html", {"message": message, "status": status}, status_code=status
        )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            reader.close()

    routes = [
        Route("/", library, name="library"),
        Route("/clips/{clip_id}", clip, name="clip"),
        Route("/stills/{asset_id}", still, name="still"),
        Route("/lineage/{identifier}", lineage, name="lineage"),
        Route("/media/{asset_id}", media, name="media"),
        Mount("/static", StaticFiles(packages=[("core.web", "static")]), name="static"),
    ]
    middleware = [Middleware(_SecurityHeaders)]
    if "*" not in allowed_hosts:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)))
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={ReelvaultError: error, HTTPException: error},
        lifespan=lifespan,
    )


def _status(exc: Exception) -> int:
    if isinstance(exc, HTTPException):
        return exc.status_code
    if isinstance(exc, NotFoundError | AmbiguousIdError):
        return 404
    return 400 if isinstance(exc, RequestError) else 500


def _wants_json(request: Request) -> bool:
    return request.query_params.get("format") == "json"


def _servable(asset: Asset) -> bool:
    return bool(asset.sha256) and not asset.is_placeholder


def _media_url(request: Request, asset_id: str) -> str:
    return str(request.url_for("media", asset_id=asset_id))


def _page_size(request: Request) -> int:
    text = request.query_params.get("n", str(PAGE_SIZE))
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise RequestError(f"n must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(text)


def _library_data(session: Session, request: Request) -> dict[str, Any]:
    """The library page: newest first, filtered, paged by keyset cursors."""
    params = request.query_params
    provenance = params.get("provenance") or None
    if provenance and provenance not in PROVENANCE_STATES:
        raise RequestError(
            f"unknown provenance state {provenance!r} (choose {', '.join(PROVENANCE_STATES)})"
        )
    before, after = params.get("before") or None, params.get("after") or None
    if before and after:
        raise RequestError("give either before or after, not both")
    size = _page_size(request)
    sort, page = _sort_and_page(request)
    if sort != "created" and (before or after):
        raise RequestError("before and after page the created order; other sorts use page")
    tag = params.get("tag") or None
    filters = ClipFilter(
        model=params.get("model") or None,
        backend=params.get("backend") or None,
        status=params.get("status") or None,
        text=params.get("q") or None,
        provenance=provenance,
        cursor=before or after,
        oldest_first=after is not None,
        limit=size + 1,  # one more tells whether another page follows
        tags=(tag,) if tag else (),
        sort=sort,
        offset=(page - 1) * size,
    )
    rows = list_generations(session, filters)
    more = len(rows) > size
    rows = rows[:size]
    if after:
        rows.reverse()
    states = latest_states(session, [g.output_asset_id for g in rows])
    extras = organised_by_id(session, [g.id for g in rows], clips=True)
    # a twin pages its twins
    base = request.url.remove_query_params(["before", "after", "page"])
    if sort == "created":
        has_older = bool(rows) and (after is not None or more)
        has_newer = bool(rows) and (before is not None or (after is not None and more))
        older = str(base.include_query_params(before=rows[-1].id)) if has_older else None
        newer = str(base.include_query_params(after=rows[0].id)) if has_newer else None
    else:
        older = str(base.include_query_params(page=page + 1)) if more else None
        newer = str(base.include_query_params(page=page - 1)) if page > 1 else None
    return {
        "clips": [_card(request, g, states, extras[g.id]) for g in rows],
        "older": older,
        "newer": newer,
        "filters": {
            "tag": filters.tags[0] if filters.tags else None,
            "sort": sort,
            "q": filters.text,
            "model": filters.model,
            "backend": filters.backend,
            "status": filters.status,
            "provenance": provenance,
            "n": size,
        },
        "facets": {
            **clip_facets(session),
            "provenance": list(PROVENANCE_STATES),
            "tag": tag_names(session),
            "sort": list(SORTS),
        },
    }


def _sort_and_page(request: Request) -> tuple[str, int]:
    sort = request.query_params.get("sort") or "created"
    if sort not in SORTS:
        raise RequestError(f"unknown sort {sort!r} (choose {', '.join(SORTS)})")
    text = request.query_params.get("page", "1")
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_NUMBER:
        raise RequestError(f"page must be a whole number from 1 to {MAX_PAGE_NUMBER}")
    return sort, int(text)


def _card(
    request: Request, g: Generation, states: Mapping[str, str], extra: Organised
) -> dict[str, Any]:
    return {
        **generation_summary(g),
        **extra.as_dict(),
        "provenance": states.get(g.output_asset_id or ""),
        "page": str(request.url_for("clip", clip_id=g.id)),
        "thumbnail": _media_url(request, g.thumbnail_asset_id) if g.thumbnail_asset_id else None,
    }


def _clip_urls(request: Request, data: Mapping[str, Any]) -> dict[str, Any]:
    def file(key: str) -> str | None:
        asset = data[key]
        servable = asset and asset["sha256"] and not asset["placeholder"]
        return _media_url(request, asset["id"]) if servable else None

    lineage = request.url_for("lineage", identifier=data["id"])
    return {
        "page": str(request.url_for("clip", clip_id=data["id"])),
        **{key: file(key) for key in ("video", "thumbnail", "source", "input", "spritesheet")},
        "download": (f"{file('video')}?download=1" if file("video") else None),
        "source_page": (
            str(request.url_for("still", asset_id=data["source"]["id"])) if data["source"] else None
        ),
        "parent_page": (
            str(request.url_for("clip", clip_id=data["parent_id"])) if data["parent_id"] else None
        ),
        "lineage": {fmt: str(lineage.include_query_params(format=fmt)) for fmt in LINEAGE_FORMATS},
    }


def _variant_card(request: Request, variant: Mapping[str, Any]) -> dict[str, Any]:
    """One clip of the shot, for the side-by-side comparison: its page and its files."""
    video, thumbnail = variant["stored_video"], variant["stored_thumbnail"]
    return {
        **variant,
        "page": str(request.url_for("clip", clip_id=variant["id"])),
        "video": _media_url(request, video) if video else None,
        "thumbnail": _media_url(request, thumbnail) if thumbnail else None,
    }


def _lineage_svg(env: jinja2.Environment, request: Request, family: Mapping[str, Any]) -> str:
    """The family picture: every node a thumbnail linking to its own page."""

    def node_href(node: lineage_render.PlacedNode) -> URL:
        if node.kind == "still":
            return request.url_for("still", asset_id=node.id)
        return request.url_for("clip", clip_id=node.id)

    return env.get_template("lineage.svg").render(
        layout=lineage_render.layout(family),
        node_href=node_href,
        media_href=lambda asset_id: _media_url(request, asset_id),
    )


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise RequestError(f"cannot resolve host {host!r}") from None
    return all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def serve(
    app: Reelvault,
    host: str,
    port: int,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the library until interrupted; ``announce`` gets the address once it listens.

    The socket is bound here, before the server starts, so ``port=0`` picks a free port
    and the announced address is the real one.
    """
    import uvicorn  # only the serve command needs the server

    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        raise RequestError(f"cannot resolve host {host!r}") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise RequestError(f"cannot listen on {host} port {port}: {exc.strerror}") from None
    bound_host, bound_port = sock.getsockname()[:2]
    allowed = LOOPBACK_NAMES if is_loopback(host) else ("*",)
    config = uvicorn.Config(create_app(app, allowed), log_level="warning", lifespan="on")
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    announce(f"http://{shown}:{bound_port}/")
    with sock:
        uvicorn.Server(config).run(sockets=[sock])
