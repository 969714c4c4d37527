"""The one check of a reply server's base URL, shared by the config loader and the client itself."""

from __future__ import annotations

from urllib.parse import urlsplit


def base_url_problem(url: str, name: str, example: str = "") -> str | None:
    """Why `url` cannot be an OpenAI-compatible server's base URL, or None. `name` is how the message calls
    the setting; `example` (if any) follows the scheme requirement."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - parsing the port is the check: it raises on "host:abc"
    except ValueError:
        return f"{name} has an invalid port: {url!r}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{name} must be an http:// or https:// URL{example}, got {url!r}"
    return None
