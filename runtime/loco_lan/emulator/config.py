"""The emulator's settings, read from the environment the pod (or a local run) sets.

Names kept from the existing cluster: ``DISK``, ``QEMU_MEMORY``, ``QEMU_SMP``,
``NETWORK_MODE``, ``SOCKET_PORT``, ``SOCKET_MASTER_HOST``, ``INSTANCE_ID``,
``SNAPSHOT_TAG``; ``LOCO_DISK`` takes precedence over ``DISK``. The rest are ``LOCO_*``.
"""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from loco_lan.errors import LocoError

DEFAULT_DISK = "/images/win98.qcow2"
NETWORK_MODES = ("socket", "user", "bridge", "vxlan", "macvlan", "none")
VGA_MODELS = ("std", "vmware", "cirrus")
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")
LOCAL = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # a wildcard listener, reached locally


@dataclass(frozen=True)
class EmulatorConfig:
    disk: Path
    disk_variable: str  # the variable that named the disk (or "default"), for error messages
    disk_readonly: bool
    overlay_dir: Path
    instance_id: str
    ordinal: int
    memory_mb: int = 512
    smp: int = 1
    vga: str = "std"
    audio: bool = True
    audiodev: str = "none"
    network_mode: str = "socket"
    socket_port: int = 4444
    socket_master_host: str = ""
    lan_listen: str = "0.0.0.0"  # where instance 0's LAN hub listens
    lan_wait: float = 300.0  # seconds a peer waits for the hub before giving up
    tap_ifname: str = "tap0"
    bridge: str = "br0"
    mac: str = "52:54:00:4c:4f:00"
    guest_channel: str = ""  # COM1 as a TCP server, host:port ("" = none): loco_lan.guestchannel
    vnc_listen: str = "0.0.0.0"
    vnc_display: int = 1
    vnc_password: str | None = None
    qmp_socket: Path = Path("/run/loco/instance-0.qmp")
    health_listen: str = "0.0.0.0"
    health_port: int = 8080
    accel: str = "auto"
    qemu_binary: str = "qemu-system-i386"
    stop_timeout: float = 20.0

    @property
    def vnc_port(self) -> int:
        return 5900 + self.vnc_display

    @property
    def runs_lan_hub(self) -> bool:
        """Instance 0 of a socket LAN runs the hub every QEMU connects to."""
        return self.network_mode == "socket" and self.ordinal == 0

    @property
    def lan_hub(self) -> tuple[str, int]:
        """Where this instance's QEMU connects for the socket LAN: its own hub on instance 0."""
        if self.runs_lan_hub:
            return LOCAL.get(self.lan_listen, self.lan_listen), self.socket_port
        return self.socket_master_host, self.socket_port


def from_env(env: Mapping[str, str] | None = None) -> EmulatorConfig:
    """Settings from ``env`` (default ``os.environ``); a bad value raises LocoError naming it."""
    env = os.environ if env is None else env
    if env.get("LOCO_DISK") is not None:
        disk_variable = "LOCO_DISK"
    elif env.get("DISK") is not None:
        disk_variable = "DISK"
    else:
        disk_variable = "default"
    disk = env.get("LOCO_DISK", env.get("DISK", DEFAULT_DISK))
    if not disk.strip():
        raise LocoError(f"{disk_variable} is empty: set it to the path of the Windows 98 qcow2 image")

    ordinal = _ordinal(env)
    instance_id = env.get("INSTANCE_ID") or f"instance-{ordinal}"
    mode = env.get("NETWORK_MODE", "socket").strip().lower()
    if mode not in NETWORK_MODES:
        raise LocoError(f"NETWORK_MODE={mode!r}: expected one of {', '.join(NETWORK_MODES)}")
    vga = env.get("LOCO_VGA") or ("vmware" if "softgpu" in env.get("SNAPSHOT_TAG", "") else "std")
    if vga not in VGA_MODELS:
        raise LocoError(f"LOCO_VGA={vga!r}: expected one of {', '.join(VGA_MODELS)}")
    config = EmulatorConfig(
        disk=Path(disk),
        disk_variable=disk_variable,
        disk_readonly=_flag(env, "LOCO_DISK_READONLY", False),
        overlay_dir=Path(env.get("LOCO_OVERLAY_DIR", "/var/lib/loco/overlays")),
        instance_id=instance_id,
        ordinal=ordinal,
        memory_mb=_int(env, "QEMU_MEMORY", 512, 8, 4096, strip_suffix=True),
        smp=_int(env, "QEMU_SMP", 1, 1, 16),
        vga=vga,
        audio=_flag(env, "LOCO_AUDIO", True),
        audiodev=env.get("LOCO_AUDIODEV", "none"),
        network_mode=mode,
        socket_port=_int(env, "SOCKET_PORT", 4444, 1, 65535),
        socket_master_host=env.get("SOCKET_MASTER_HOST") or master_from_hostname(env.get("HOSTNAME", "")),
        lan_listen=env.get("LOCO_LAN_LISTEN", "0.0.0.0"),
        lan_wait=float(_int(env, "LOCO_LAN_WAIT", 300, 0, 3600)),
        tap_ifname=env.get("LOCO_TAP_IFNAME", "tap0"),
        bridge=env.get("LOCO_BRIDGE", "br0"),
        mac=env.get("LOCO_MAC") or f"52:54:00:4c:4f:{ordinal % 256:02x}",
        guest_channel=_channel(env.get("LOCO_GUEST_CHANNEL", "")),
        vnc_listen=env.get("LOCO_VNC_LISTEN", "0.0.0.0"),
        vnc_display=_int(env, "LOCO_VNC_DISPLAY", 1, 0, 59635),
        vnc_password=_password(env),
        qmp_socket=Path(env.get("LOCO_QMP_SOCKET") or f"/run/loco/{instance_id}.qmp"),
        health_listen=env.get("LOCO_HEALTH_LISTEN", "0.0.0.0"),
        health_port=_int(env, "LOCO_HEALTH_PORT", 8080, 0, 65535),
        accel=env.get("LOCO_ACCEL", "auto"),
        qemu_binary=env.get("LOCO_QEMU", "qemu-system-i386"),
        stop_timeout=float(_int(env, "LOCO_STOP_TIMEOUT", 20, 1, 600)),
    )
    if config.network_mode == "socket" and config.ordinal > 0 and not config.socket_master_host:
        raise LocoError(
            f"SOCKET_MASTER_HOST is unset: {instance_id} must connect to the socket LAN's instance 0"
        )
    if not re.fullmatch(r"(?:[0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}", config.mac):
        raise LocoError(f"LOCO_MAC={config.mac!r}: expected six hex pairs such as 52:54:00:4c:4f:01")
    return config


def _ordinal(env: Mapping[str, str]) -> int:
    """instance-3 / 3 from INSTANCE_ID, else the StatefulSet pod name's suffix, else 0."""
    for name in ("INSTANCE_ID", "HOSTNAME"):
        match = re.search(r"(?:^|-)(\d+)$", env.get(name, ""))
        if match:
            return int(match.group(1))
    return 0


def master_from_hostname(hostname: str) -> str:
    """``rel-emulator-3`` -> ``rel-emulator-0.rel-emulator``: pod 0 through the headless Service."""
    match = re.fullmatch(r"(.+)-\d+", hostname)
    return f"{match.group(1)}-0.{match.group(1)}" if match else ""


def _channel(value: str) -> str:
    """``host:port`` of the guest channel, or "" for none (``none``, ``off`` or empty)."""
    value = value.strip()
    if value.lower() in ("", "none", "off"):
        return ""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise LocoError(f"LOCO_GUEST_CHANNEL={value!r}: expected host:port (such as 127.0.0.1:4555) or none")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name)
    if value is None:
        return default
    if value.strip().lower() in TRUE:
        return True
    if value.strip().lower() in FALSE:
        return False
    raise LocoError(f"{name}={value!r}: expected true or false")


def _int(
    env: Mapping[str, str], name: str, default: int, low: int, high: int, strip_suffix: bool = False
) -> int:
    value = env.get(name)
    if value is None or not value.strip():
        return default
    text = value.strip()
    if strip_suffix:  # QEMU_MEMORY may say 512M
        text = re.sub(r"(?i)m(i?b)?$", "", text)
    try:
        number = int(text)
    except ValueError:
        raise LocoError(f"{name}={value!r}: expected a whole number") from None
    if not low <= number <= high:
        raise LocoError(f"{name}={value!r}: expected a number from {low} to {high}")
    return number


def _password(env: Mapping[str, str]) -> str | None:
    """The VNC password from LOCO_VNC_PASSWORD_FILE (a mounted Secret) or VNC_PASSWORD."""
    path = env.get("LOCO_VNC_PASSWORD_FILE")
    if path:
        try:
            password = Path(path).read_text().rstrip("\r\n")
        except OSError as exc:
            raise LocoError(f"LOCO_VNC_PASSWORD_FILE={path}: cannot read it ({exc.strerror})") from exc
    else:
        password = env.get("VNC_PASSWORD")
    if password is not None and not password:
        raise LocoError("the VNC password is empty: unset it to run without one")
    return password
