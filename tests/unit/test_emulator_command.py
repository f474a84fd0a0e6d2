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
    assert option(command, "-machine") == ["pc"] and option(command, "-cpu") == ["pentium2"]
    assert option(command, "-m") == ["512"] and option(command, "-accel") == ["kvm"]
    assert option(command, "-drive") == ["file=/images/win98.qcow2,format=qcow2,if=ide,index=0,media=disk"]
    assert option(command, "-vga") == ["std"]
    assert "ne2k_pci,netdev=lan0,mac=52:54:00:4c:4f:00" in option(command, "-device")
    assert "sb16,audiodev=snd0" in option(command, "-device")
    assert option(command, "-monitor") == ["none"]


def test_vnc_display_listen_and_password_flag():
    command = build_command(from_env({"LOCO_VNC_DISPLAY": "7", "LOCO_VNC_LISTEN": "127.0.0.1"}), DISK, "tcg")
    assert option(command, "-vnc") == ["127.0.0.1:7"]
    command = build_command(from_env({"VNC_PASSWORD": "hunter2"}), DISK, "tcg")
    assert option(command, "-vnc") == ["0.0.0.0:1,password=on"]
    assert not any("hunter2" in arg for arg in command)


def test_qmp_socket_per_instance():
    command = build_command(from_env({"INSTANCE_ID": "instance-4", "NETWORK_MODE": "user"}), DISK, "tcg")
    assert option(command, "-qmp") == ["unix:/run/loco/instance-4.qmp,server=on,wait=off"]


def test_socket_lan_instance_zero_listens_others_connect():
    listen = build_command(from_env({"SOCKET_PORT": "4444"}), DISK, "tcg")
    assert option(listen, "-netdev") == ["socket,id=lan0,listen=:4444"]
    env = {"INSTANCE_ID": "instance-2", "SOCKET_MASTER_HOST": "loco-emulator-0.loco-emulator"}
    connect = build_command(from_env(env), DISK, "tcg")
    assert option(connect, "-netdev") == ["socket,id=lan0,connect=loco-emulator-0.loco-emulator:4444"]
    assert "ne2k_pci,netdev=lan0,mac=52:54:00:4c:4f:02" in option(connect, "-device")


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


def test_audio_can_be_left_out_and_commas_escaped():
    command = build_command(
        from_env({"LOCO_AUDIO": "false", "NETWORK_MODE": "user"}), Path("/d/a,b.qcow2"), "tcg"
    )
    assert not option(command, "-audiodev")
    assert option(command, "-drive")[0].startswith("file=/d/a,,b.qcow2,")
