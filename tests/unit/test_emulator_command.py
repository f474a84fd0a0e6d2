"""The QEMU command line built from settings (pure)."""

from pathlib import Path

from loco_lan.emulator.config import from_env
from loco_lan.emulator.qemu import build_command

DISK = Path("/images/win98.qcow2")


def option(command: list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == flag]


def test_guest_hardware_as_the_snapshot_expects():
    command = build_command(from_env({}), DISK, "kvm")
    assert command[0] == "qemu-system-i386"
    assert option(command, "-machine") == ["pc,pcspk-audiodev=snd0"] and option(command, "-cpu") == ["pentium2"]
    assert option(command, "-m") == ["512"] and option(command, "-accel") == ["kvm"]
    assert option(command, "-drive") == ["file=/images/win98.qcow2,format=qcow2,if=ide,index=0,media=disk"]
    assert option(command, "-vga") == ["std"]
    assert "ne2k_pci,netdev=lan0,mac=52:54:00:4c:4f:00" in option(command, "-device")
    assert "sb16,audiodev=snd0" in option(command, "-device")
    assert option(command, "-monitor") == ["none"]


def test_vnc_display_listen_and_password_flag():
    command = build_command(from_env({"LOCO_VNC_DISPLAY": "7", "LOCO_VNC_LISTEN": "127.0.0.1"}), DISK, "tcg")
    assert option(command, "-vnc") == ["127.0.0.1:7,audiodev=snd0"]
    command = build_command(from_env({"VNC_PASSWORD": "hunter2"}), DISK, "tcg")
    assert option(command, "-vnc") == ["0.0.0.0:1,password=on,audiodev=snd0"]
    assert not any("hunter2" in arg for arg in command)


def test_qmp_socket_per_instance():
    command = build_command(from_env({"INSTANCE_ID": "instance-4", "NETWORK_MODE": "user"}), DISK, "tcg")
    assert option(command, "-qmp") == ["unix:/run/loco/instance-4.qmp,server=on,wait=off"]


def test_socket_lan_every_instance_connects_to_the_hub_on_instance_zero():
    master = build_command(from_env({"SOCKET_PORT": "4444"}), DISK, "tcg")
    assert option(master, "-netdev") == ["socket,id=lan0,connect=127.0.0.1:4444"]
    env = {"INSTANCE_ID": "instance-2", "SOCKET_MASTER_HOST": "loco-emulator-0.loco-emulator"}
    peer = build_command(from_env(env), DISK, "tcg")
    assert option(peer, "-netdev") == ["socket,id=lan0,connect=loco-emulator-0.loco-emulator:4444"]
    assert "ne2k_pci,netdev=lan0,mac=52:54:00:4c:4f:02" in option(peer, "-device")
    assert not any("listen=" in arg for arg in master + peer)


def test_hub_reached_where_it_listens():
    pinned = build_command(from_env({"LOCO_LAN_LISTEN": "10.1.2.3", "SOCKET_PORT": "5000"}), DISK, "tcg")
    assert option(pinned, "-netdev") == ["socket,id=lan0,connect=10.1.2.3:5000"]
    ipv6 = build_command(from_env({"LOCO_LAN_LISTEN": "::"}), DISK, "tcg")
    assert option(ipv6, "-netdev") == ["socket,id=lan0,connect=[::1]:4444"]
    peer = {"INSTANCE_ID": "instance-1", "SOCKET_MASTER_HOST": "fd00::10", "LOCO_LAN_LISTEN": "10.1.2.3"}
    assert option(build_command(from_env(peer), DISK, "tcg"), "-netdev") == [
        "socket,id=lan0,connect=[fd00::10]:4444"
    ]


def test_other_network_modes():
    assert option(build_command(from_env({"NETWORK_MODE": "user"}), DISK, "tcg"), "-netdev") == [
        "user,id=lan0,net=192.168.10.0/24"
    ]
    assert option(build_command(from_env({"NETWORK_MODE": "vxlan"}), DISK, "tcg"), "-netdev") == [
        "tap,id=lan0,ifname=tap0,script=no,downscript=no"
    ]
    assert option(build_command(from_env({"NETWORK_MODE": "bridge"}), DISK, "tcg"), "-netdev") == [
        "bridge,id=lan0,br=br0"
    ]
    none = build_command(from_env({"NETWORK_MODE": "none"}), DISK, "tcg")
    assert option(none, "-nic") == ["none"] and not option(none, "-netdev")


def test_sound_reaches_vnc_clients():
    command = build_command(from_env({"NETWORK_MODE": "user"}), DISK, "tcg")
    assert option(command, "-audiodev") == ["none,id=snd0"]
    assert option(command, "-vnc")[0].endswith(",audiodev=snd0")
    assert "pcspk-audiodev=snd0" in option(command, "-machine")[0]


def test_audio_can_be_left_out_and_commas_escaped():
    command = build_command(
        from_env({"LOCO_AUDIO": "false", "NETWORK_MODE": "user"}), Path("/d/a,b.qcow2"), "tcg"
    )
    assert not option(command, "-audiodev")
    assert option(command, "-machine") == ["pc"] and "audiodev" not in option(command, "-vnc")[0]
    assert option(command, "-drive")[0].startswith("file=/d/a,,b.qcow2,")
