"""The live page of `ledger dev`: one static file (services/web/live.html), served from a
thread on its own port, so that the API stays what the contract says it is.

The page is on another origin than the API: `ledger dev` lists it in the API's
LEDGER_CORS_ORIGINS. Its token travels in the URL's fragment, which the browser never
sends to a server.
"""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

PAGE = Path(__file__).parent / "web" / "live.html"


class _PageOnly(SimpleHTTPRequestHandler):
    """Serves the folder of the page (that one file), without a log line per request."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(port: int) -> tuple[ThreadingHTTPServer, str]:
    """The server (already serving, from a daemon thread) and its origin."""
    handler = functools.partial(_PageOnly, directory=str(PAGE.parent))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, name="dev-page", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def page_url(origin: str, api: str, token: str) -> str:
    return f"{origin}/{PAGE.name}#api={quote(api, safe='')}&token={quote(token, safe='')}"


def with_origin(cors_origins: str, origin: str) -> str:
    """LEDGER_CORS_ORIGINS with the page's origin added (`*` already admits it)."""
    listed = [item.strip() for item in cors_origins.split(",") if item.strip()]
    if "*" in listed or origin in listed:
        return cors_origins
    return ",".join([*listed, origin])
