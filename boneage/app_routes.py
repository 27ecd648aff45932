"""The app's own HTTP route (``app.py`` mounts it with ``st.App(routes=routes())``): the pages' downloads.

Kept apart from ``boneage.ui`` so the server can mount it before Streamlit's runtime exists: importing the
UI package at that point registers its caches with no runtime (a warning per cache in the server log).
The files themselves are built by :mod:`boneage.ui.downloads`, which says why the app serves them itself.
"""
from __future__ import annotations

import re
from urllib.parse import quote

ROUTE_PREFIX = "boneage-download"  # links are relative: right under any server.baseUrlPath, from every page
_mounted = False


async def _serve(request):
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import PlainTextResponse, Response

    from .ui import downloads

    kind = request.path_params["kind"]
    live = downloads.session_downloads(request.path_params["token"])
    if live is None:
        return PlainTextResponse("This download link has expired: reload the page and download again.",
                                 status_code=404)
    try:  # live.current() may wait for a rerun to publish: off the event loop
        data, f = await run_in_threadpool(downloads.build, live, kind)
    except KeyError:
        return PlainTextResponse(f"This page offers no download {kind!r}.", status_code=404)
    except RuntimeError as e:
        return PlainTextResponse(f"Download failed: {e}.", status_code=409)
    return Response(data, media_type=f.mime,
                    headers={"Content-Disposition": content_disposition(f.name), "Cache-Control": "no-store"})


def content_disposition(name: str) -> str:
    """An attachment header for a file name the user chose (the upload's name): an ASCII fallback and the
    exact name in RFC 6266's UTF-8 form; quotes, line breaks and path separators never reach the header."""
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "boneage"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def routes() -> list:
    """The download route for ``st.App(routes=...)``; from then on the pages draw links to it (:func:`mounted`)."""
    global _mounted
    from starlette.routing import Route

    _mounted = True
    return [Route(f"/{ROUTE_PREFIX}/{{token}}/{{kind}}", _serve, methods=["GET"])]


def mounted() -> bool:
    """Whether this process serves :func:`routes` (``streamlit run app.py``): links can replace buttons."""
    return _mounted
