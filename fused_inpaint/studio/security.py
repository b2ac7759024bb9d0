"""What every request to the studio must pass: the token, its own Host, its own Origin.

Like Jupyter's: the printed address carries a random token; the first visit with it sets a
cookie (HttpOnly, SameSite=Strict), and every request needs one of the two. A Host header
that names another server is refused, which defeats DNS rebinding (a page of an attacker's
domain that resolves to 127.0.0.1 sends its own name), and so is an Origin or
Sec-Fetch-Site that says the request comes from another site's page.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, RedirectResponse

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")

# The page loads only what its own server sends; nothing may frame it.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}


def new_token() -> str:
    return secrets.token_hex(24)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _split_host(value: str) -> tuple[str, int | None]:
    """'name:port' or '[v6]:port' -> (name, port); (value, None) without a port."""
    try:
        parts = urlsplit(f"//{value}")
        return (parts.hostname or ""), parts.port
    except ValueError:
        return "", None


class Guard:
    """ASGI middleware: refuses (403) a request without the token, with a foreign Host or
    a cross-site Origin; sets the cookie on a visit with the token; adds SECURITY_HEADERS.

    ``host``/``port``: where the server listens. Hosts accepted in requests: the local
    names when it listens on a loopback address; on a wildcard address also IP literals
    and this machine's own names (a DNS name of anyone else's is what rebinding uses).
    """

    def __init__(self, app, token: str, host: str, port: int):
        self.app, self.token, self.port = app, token, port
        self.cookie = f"fused_inpaint_studio_{port}"
        names = {host.lower().strip("[]")} | set(LOCAL_NAMES)
        self.any_ip = host in WILDCARD_HOSTS
        if self.any_ip:
            names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        self.names = names

    def host_allowed(self, value: str) -> bool:
        name, port = _split_host(value)
        if port != self.port and not (port is None and self.port == 80):
            return False
        return name in self.names or (self.any_ip and _is_ip(name))

    def origin_allowed(self, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            if parts.scheme != "http" or not self.host_allowed(parts.netloc):
                return False
        return headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")

    def token_given(self, scope, headers: Headers) -> tuple[bool, bool]:
        """(whether the request carries the token, whether it came in the query)."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        in_query = query.get("token", [""])[0]
        if in_query and secrets.compare_digest(in_query, self.token):
            return True, True
        cookies = SimpleCookie()
        try:
            cookies.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no token
            return False, False
        morsel = cookies.get(self.cookie)
        return bool(morsel and secrets.compare_digest(morsel.value, self.token)), False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if not self.host_allowed(headers.get("host", "")):
            response = _refusal("this server answers only to its own address (Host refused)")
            return await response(scope, receive, send)
        if not self.origin_allowed(headers):
            response = _refusal("requests from another site's page are refused (Origin)")
            return await response(scope, receive, send)
        has_token, in_query = self.token_given(scope, headers)
        if not has_token:
            response = _refusal(
                "missing or wrong token: open the address that fused-inpaint studio printed"
            )
            return await response(scope, receive, send)
        if in_query and scope["method"] == "GET" and scope["path"] == "/":
            # The first visit: the cookie from now on, and the token out of the address bar.
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(self.cookie, self.token, httponly=True, samesite="strict")
            return await response(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _refusal(message: str) -> PlainTextResponse:
    return PlainTextResponse(message, status_code=403, headers=SECURITY_HEADERS)
