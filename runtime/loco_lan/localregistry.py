"""A private CNCF distribution registry (Debian's ``docker-registry``) on a loopback port.

Tests use it as a real registry; ``loco registry up`` leaves one running so the local
demo can serve its disk.  Everything it owns lives in one state directory: the
config, the blob storage, the log, the optional htpasswd file and ``state.json``.
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from loco_lan.errors import LocoError
from loco_lan.fsutil import atomic_write
from loco_lan.netutil import LOOPBACK, free_port

BINARY = "docker-registry"
HOST = LOOPBACK


def make_htpasswd(path: Path, username: str, password: str) -> None:
    """Write a bcrypt htpasswd entry (the only hash the registry accepts); the password goes via stdin."""
    tool = shutil.which("htpasswd")
    if tool is None:
        raise LocoError("htpasswd not found; install apache2-utils")
    done = subprocess.run(
        [tool, "-niB", username], input=password + "\n", capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise LocoError(f"htpasswd failed: {done.stderr.strip()}")
    atomic_write(path, done.stdout, mode=0o600)


def blob_path(storage: Path, digest: str) -> Path:
    """Where the filesystem driver keeps a blob's bytes."""
    hex_digest = digest.split(":", 1)[1]
    return storage / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"


class LocalRegistry:
    def __init__(
        self,
        state_dir: str | os.PathLike,
        *,
        port: int = 0,
        htpasswd: Path | None = None,
        auth: dict | None = None,
        tls: tuple[Path, Path] | None = None,
    ):
        """``htpasswd`` turns on basic auth; ``auth`` is a raw ``auth`` config section instead
        (e.g. ``{"token": {...}}`` for a bearer-token service); ``tls`` (certificate, key) serves HTTPS."""
        self.state_dir = Path(state_dir).resolve()
        self.storage = self.state_dir / "storage"
        self.port = port
        self.htpasswd = htpasswd
        self.auth = auth or ({"htpasswd": {"realm": "loco", "path": str(htpasswd)}} if htpasswd else None)
        self.tls = tls
        self.pid: int | None = None
        self._process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def _config_file(self) -> Path:
        return self.state_dir / "config.yml"

    def start(self, timeout: float = 15.0) -> "LocalRegistry":
        binary = shutil.which(BINARY)
        if binary is None:
            raise LocoError(f"{BINARY} not found; install the Debian package docker-registry")
        self.storage.mkdir(parents=True, exist_ok=True)
        fixed_port = self.port
        for _ in range(3):  # a free port can be taken between probing it and the registry binding it
            self.port = fixed_port or free_port()
            atomic_write(self._config_file, self._config())
            with (self.state_dir / "registry.log").open("ab") as log:
                self._process = subprocess.Popen(
                    [binary, "serve", str(self._config_file)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                )
            self.pid = self._process.pid
            if self._wait_ready(timeout):
                atomic_write(self._state_file, json.dumps(self.describe(), indent=2) + "\n")
                return self
            if fixed_port:
                break
        raise LocoError(f"{BINARY} did not start; see {self.state_dir / 'registry.log'}")

    def _config(self) -> str:
        # JSON is valid YAML, and needs no YAML writer.
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
        }
        if self.auth:
            config["auth"] = self.auth
        if self.tls:
            config["http"]["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}
        return json.dumps(config, indent=2) + "\n"

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        probe = ssl.create_default_context()  # a liveness probe of our own child: its certificate can wait
        probe.check_hostname = False
        probe.verify_mode = ssl.CERT_NONE
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=1, context=probe):
                    return True
            except urllib.error.HTTPError as exc:
                if exc.code == 401:  # up, and asking for credentials
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        return False

    def describe(self) -> dict:
        return {
            "pid": self.pid,
            "url": self.url,
            "host": self.host,
            "port": self.port,
            "storage": str(self.storage),
            "htpasswd": str(self.htpasswd) if self.htpasswd else None,
        }

    @classmethod
    def load(cls, state_dir: str | os.PathLike) -> "LocalRegistry | None":
        """The registry ``up`` left running in ``state_dir``, or None."""
        state_dir = Path(state_dir)
        try:
            state = json.loads((state_dir / "state.json").read_text())
        except (OSError, ValueError):
            return None
        htpasswd = Path(state["htpasswd"]) if state.get("htpasswd") else None
        registry = cls(state_dir, port=state["port"], htpasswd=htpasswd)
        registry.pid = state["pid"]
        return registry if registry.running else None

    @classmethod
    def ensure(cls, state_dir: str | os.PathLike) -> tuple["LocalRegistry", bool]:
        """The registry running in ``state_dir``, or a new one (True when started).  A new one
        takes the port of the one before when it is free, so references written then still work."""
        running = cls.load(state_dir)
        if running is not None:
            return running, False
        try:
            previous = json.loads((Path(state_dir) / "state.json").read_text())["port"]
        except (OSError, ValueError, KeyError):
            previous = 0
        if previous:
            with contextlib.suppress(LocoError):  # taken by something else: any free port will do
                return cls(state_dir, port=previous).start(), True
        return cls(state_dir).start(), True

    @property
    def running(self) -> bool:
        if self.pid is None:
            return False
        if self._process is not None:
            return self._process.poll() is None
        try:  # not our child: make sure the pid still is our registry, not a recycled one
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return cmdline[0].endswith(BINARY.encode()) and str(self._config_file).encode() in cmdline

    def stop(self, timeout: float = 10.0) -> None:
        if self.running:
            os.kill(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.running and time.monotonic() < deadline:
                if self._process is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self._process.wait(0.1)
                else:
                    time.sleep(0.1)
            if self.running:
                os.kill(self.pid, signal.SIGKILL)
                if self._process is not None:
                    self._process.wait()
        with contextlib.suppress(FileNotFoundError):
            self._state_file.unlink()

    def __enter__(self) -> "LocalRegistry":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
