"""The QEMU command line for one Windows 98 guest (pure: no I/O, unit-tested).

Hardware as the snapshots expect it: machine ``pc``, CPU ``pentium2``, IDE disk,
VGA ``std`` or ``vmware`` (SoftGPU), NIC ``ne2k_pci``, Sound Blaster 16. The
default CD-ROM, serial and parallel ports stay, so the guest sees no hardware
change; COM1 is a TCP server on the pod's loopback (the guest channel, ``LOCO_GUEST_CHANNEL``);
the monitor goes to QMP only, never to a console reachable over VNC.

Sound (the Sound Blaster and the PC speaker) goes to one audiodev, ``snd0``, whose
output QEMU's VNC server also streams to clients that ask (its audio extension):
that is how the streaming gateway hears a guest, with no sound server in the pod.
"""

from pathlib import Path

from loco_lan.emulator.config import EmulatorConfig


def build_command(config: EmulatorConfig, disk: Path, accel: str, lan: tuple[str, int] | None = None) -> list[str]:
    """``accel`` is ``kvm`` or ``tcg`` (resolved by the caller from ``config.accel``); ``lan`` is where
    the socket LAN's netdev connects when not straight to the hub (a peer's uplink)."""
    vnc = f"{_host(config.vnc_listen)}:{config.vnc_display}"
    if config.vnc_password is not None:
        vnc += ",password=on"  # the password itself goes over QMP, never on the command line
    machine = "pc"
    if config.audio:
        vnc += ",audiodev=snd0"
        machine += ",pcspk-audiodev=snd0"
    command = [
        config.qemu_binary,
        "-name",
        f"loco-{config.instance_id}",
        "-machine",
        machine,
        "-accel",
        accel,
        "-cpu",
        "pentium2",
        "-m",
        str(config.memory_mb),
        "-smp",
        str(config.smp),
        "-rtc",
        "base=localtime",
        "-drive",
        f"file={_escape(disk)},format=qcow2,if=ide,index=0,media=disk",
        "-boot",
        "order=c",
        "-vga",
        config.vga,
        "-display",
        "none",
        "-vnc",
        vnc,
        "-qmp",
        f"unix:{_escape(config.qmp_socket)},server=on,wait=off",
        "-monitor",
        "none",
        "-serial",
        _serial(config.guest_channel),
        "-parallel",
        "null",
    ]
    command += _network(config, lan or config.lan_hub)
    if config.audio:
        command += ["-audiodev", f"{config.audiodev},id=snd0", "-device", "sb16,audiodev=snd0"]
    return command


def _network(config: EmulatorConfig, lan: tuple[str, int]) -> list[str]:
    nic = ["-device", f"ne2k_pci,netdev=lan0,mac={config.mac}"]
    mode = config.network_mode
    if mode == "none":
        return ["-nic", "none"]
    if mode == "socket":
        # Every QEMU connects, to the hub instance 0 runs or to its own uplink to it: a QEMU
        # listening itself would take a single peer (see loco_lan.emulator.lanhub).
        host, port = lan
        netdev = f"socket,id=lan0,connect={_host(host)}:{port}"
    elif mode == "user":
        netdev = "user,id=lan0,net=192.168.10.0/24"
    elif mode == "bridge":
        netdev = f"bridge,id=lan0,br={config.bridge}"
    else:  # vxlan, macvlan: the pod's init wires the LAN to a tap device
        netdev = f"tap,id=lan0,ifname={config.tap_ifname},script=no,downscript=no"
    return ["-netdev", netdev, *nic]


def _serial(channel: str) -> str:
    """COM1: the guest channel (a guest that serves one, such as loco_lan.testguest, is reached
    through it; Windows 98 sees the same serial port either way), or nothing."""
    if not channel:
        return "null"
    host, _, port = channel.rpartition(":")
    return f"tcp:{_host(host.strip('[]'))}:{port},server=on,wait=off,nodelay=on"


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _escape(path: Path) -> str:
    """QEMU option values escape a comma by doubling it."""
    return str(path).replace(",", ",,")
