"""``reelvault serve``: the library as a local, read-only web app (Starlette + Jinja2).

Pages: the clips grid (``/``), the grid of every cataloged file (``/assets``; both grids
are built in :mod:`core.web.grids`), one clip (``/clips/ID``), one source still and every
clip made from it (``/stills/ID``; ``/assets/ID`` is the same page for any file: a video
plays), and a lineage in any format (``/lineage/ID``). Every
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
from catalog.organise import organised
from catalog.queries import get_asset, get_generation
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
    ingredient_failure_lines,
    lineage_dict,
    variant_dicts,
    verification_dicts,
)
from core.web.grids import assets_data, library_data, media_url, servable
from core.web.media import media_response, presigned_origin

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


def security_headers(media_origin: str | None) -> dict[str, str]:
    """:data:`SECURITY_HEADERS`, letting videos and pictures also load from
    ``media_origin`` (the bucket presigned media URLs redirect to), if any."""
    if media_origin is None:
        return SECURITY_HEADERS
    policy = SECURITY_HEADERS["content-security-policy"]
    for directive in ("img-src 'self'", "media-src 'self'"):
        policy = policy.replace(directive, f"{directive} {media_origin}")
    return {**SECURITY_HEADERS, "content-security-policy": policy}


class _SecurityHeaders:
    """Adds the security headers to every response (a pure ASGI middleware, so file
    responses keep streaming)."""

    def __init__(self, app: ASGIApp, headers: Mapping[str, str] = SECURITY_HEADERS) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
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
    presign_seconds = app.settings.media_presign_seconds
    media_origin = presigned_origin(app.store, presign_seconds)
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
            data = library_data(session, request)
        return page(request, "library.html", data)

    def assets(request: Request) -> Response:
        with reader.session() as session:
            data = assets_data(session, request)
        return page(request, "assets.html", data)

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

    def asset_page(request: Request) -> Response:
        """One file: a still (its picture), a video (it plays), a placeholder (what the
        credentials naming it say), with its lineage."""
        with reader.session() as session:
            asset = get_asset(session, request.path_params["asset_id"])
            family = lineage_dict(session, asset)
            checks = verification_dicts(session, asset.id)
        data = {
            "asset": {**asset_dict(asset), "verifications": checks},
            "url": media_url(request, asset.id) if servable(asset) else None,
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
        if asset is None or not servable(asset):
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
            presign_seconds,
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
        Route("/assets", assets, name="assets"),
        Route("/assets/{asset_id}", asset_page, name="asset"),  # any file: a video, a placeholder
        Route("/stills/{asset_id}", asset_page, name="still"),
        Route("/lineage/{identifier}", lineage, name="lineage"),
        Route("/media/{asset_id}", media, name="media"),
        Mount("/static", StaticFiles(packages=[("core.web", "static")]), name="static"),
    ]
    middleware = [Middleware(_SecurityHeaders, headers=security_headers(media_origin))]
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


def _clip_urls(request: Request, data: Mapping[str, Any]) -> dict[str, Any]:
    def file(key: str) -> str | None:
        asset = data[key]
        servable = asset and asset["sha256"] and not asset["placeholder"]
        return media_url(request, asset["id"]) if servable else None

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
        "video": media_url(request, video) if video else None,
        "thumbnail": media_url(request, thumbnail) if thumbnail else None,
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
        media_href=lambda asset_id: media_url(request, asset_id),
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
