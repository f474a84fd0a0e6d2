"""Registry credentials and ``WWW-Authenticate`` challenges."""

import base64
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from loco_lan.errors import LocoError

ENV_USERNAME = "LOCO_REGISTRY_USERNAME"
ENV_PASSWORD = "LOCO_REGISTRY_PASSWORD"
ENV_TOKEN = "LOCO_REGISTRY_TOKEN"

_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Credentials:
    """Username + password (or personal access token as the password), or a ready bearer token.

    Secrets are excluded from ``repr`` so they cannot leak through logs or tracebacks.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def __bool__(self) -> bool:
        return bool(self.token or self.username)

    @classmethod
    def resolve(
        cls,
        username: str | None = None,
        password: str | None = None,
        password_file: str | os.PathLike | None = None,
        token: str | None = None,
    ) -> "Credentials":
        """Explicit values first, then ``LOCO_REGISTRY_*`` environment variables."""
        if password_file:
            try:
                password = Path(password_file).read_text().rstrip("\r\n")
            except OSError as exc:
                raise LocoError(f"cannot read password file {password_file}: {exc.strerror}") from None
        username = username or os.environ.get(ENV_USERNAME) or None
        password = password or os.environ.get(ENV_PASSWORD) or None
        token = token or os.environ.get(ENV_TOKEN) or None
        if password and not username:
            raise LocoError(f"a registry password needs a username (--username or {ENV_USERNAME})")
        return cls(username, password, token)

    def basic(self) -> str:
        pair = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode()


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split ``Bearer realm="..",service="..",scope=".."`` into the scheme and its parameters."""
    scheme, _, rest = header.strip().partition(" ")
    params = {
        m[1].lower(): (m[2] if m[3] is None else m[3]).replace('\\"', '"') for m in _PARAM.finditer(rest)
    }
    return scheme.lower(), params
