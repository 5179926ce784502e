"""Security headers of the dashboard (``/app``): a strict CSP with no inline script or style, no framing
(except the Element widget page, framed by the configured origins), no caching of health data."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

APP_PREFIX = "/app"
STATIC_PREFIX = "/app/static/"
WIDGET_PREFIX = "/app/widget/"

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors {ancestors}"
)


def is_page(path: str) -> bool:
    return path == APP_PREFIX or path.startswith(APP_PREFIX + "/")


class SecurityHeaders:
    """Pure ASGI middleware adding the headers to every ``/app`` answer (the API is untouched)."""

    def __init__(self, app: ASGIApp, *, widget_ancestors: str) -> None:
        self.app = app
        self.widget_ancestors = widget_ancestors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not is_page(path):
            await self.app(scope, receive, send)
            return
        widget = path.startswith(WIDGET_PREFIX)
        static = path.startswith(STATIC_PREFIX)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                ancestors = self.widget_ancestors if widget else "'none'"
                headers.setdefault("Content-Security-Policy", _CSP.format(ancestors=ancestors))
                if not widget:
                    headers["X-Frame-Options"] = "DENY"
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
                headers["Cross-Origin-Opener-Policy"] = "same-origin"
                if not static:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)
