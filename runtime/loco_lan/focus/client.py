"""Synchronous client of the focus service, for the ``loco focus`` commands and the Ansible module.

Standard library only. Every mutation the service offers is idempotent (set X,
add X, remove X), so connection failures are retried for writes as well.
"""

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

from loco_lan.errors import LocoError

DEFAULT_URL = "http://127.0.0.1:8090"


def read_token(path: str | Path) -> str:
    """The bearer token in ``path`` (surrounding whitespace ignored)."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise LocoError(f"cannot read token file {path}: {exc.strerror or exc}") from exc
    if not token or any(c.isspace() for c in token):
        raise LocoError(f"token file {path} must hold one token without spaces")
    return token


class FocusClient:
    def __init__(
        self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 5.0, retries: int = 3
    ):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries

    def get(self) -> dict:
        return self._request("GET", "/api/active")

    def instances(self) -> list[dict]:
        return self._request("GET", "/api/instances")["instances"]

    def set(self, ids: list[str]) -> dict:
        return self._request("POST", "/api/active", {"ids": list(ids)})

    def add(self, ids: list[str]) -> dict:
        return self._request("POST", "/api/active/add", {"ids": list(ids)})

    def remove(self, ids: list[str]) -> dict:
        return self._request("POST", "/api/active/remove", {"ids": list(ids)})

    def clear(self) -> dict:
        return self.set([])

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        attempt = 0
        while True:
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.load(response)
            except urllib.error.HTTPError as exc:
                raise LocoError(_refusal(exc)) from exc
            except (urllib.error.URLError, OSError, ValueError) as exc:
                if attempt == self.retries:
                    reason = getattr(exc, "reason", exc)
                    raise LocoError(f"cannot reach the focus service at {self.url}: {reason}") from exc
                time.sleep(0.25 * 2**attempt)
                attempt += 1


def _refusal(exc: urllib.error.HTTPError) -> str:
    try:
        answer = json.load(exc)
        message = answer["error"]
    except (ValueError, KeyError, TypeError, OSError):
        return f"focus service answered {exc.code} {exc.reason}"
    if answer.get("valid"):
        message += f" (valid ids: {', '.join(answer['valid'])})"
    return f"focus service refused ({exc.code}): {message}"
