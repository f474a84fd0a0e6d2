"""Emulator settings from the environment: names kept from the existing cluster,
defaults, and one clear error per bad value."""

from pathlib import Path

import pytest

from loco_lan.emulator.config import DEFAULT_DISK, from_env
from loco_lan.errors import LocoError


def test_defaults_match_the_cluster():
    config = from_env({})
    assert (config.disk, config.disk_variable) == (Path(DEFAULT_DISK), "default")
    assert (config.memory_mb, config.smp, config.vga, config.network_mode) == (512, 1, "std", "socket")
    assert (config.vnc_port, config.health_port, config.socket_port) == (5901, 8080, 4444)
    assert (config.instance_id, config.ordinal, config.mac) == ("instance-0", 0, "52:54:00:4c:4f:00")
    assert config.qmp_socket == Path("/run/loco/instance-0.qmp")
    assert not config.disk_readonly and config.vnc_password is None


def test_loco_disk_wins_over_disk():
    assert from_env({"LOCO_DISK": "/a.qcow2", "DISK": "/b.qcow2"}).disk == Path("/a.qcow2")
    config = from_env({"DISK": "/b.qcow2"})
    assert (config.disk, config.disk_variable) == (Path("/b.qcow2"), "DISK")


def test_empty_disk_variable_is_named():
    with pytest.raises(LocoError, match="^DISK is empty"):
        from_env({"DISK": " "})


def test_ordinal_from_instance_id_or_pod_name():
    assert from_env({"INSTANCE_ID": "instance-3", "SOCKET_MASTER_HOST": "m"}).ordinal == 3
    config = from_env({"HOSTNAME": "loco-emulator-2"})
    assert (config.ordinal, config.instance_id, config.mac) == (2, "instance-2", "52:54:00:4c:4f:02")
    assert config.socket_master_host == "loco-emulator-0.loco-emulator"


def test_instance_zero_runs_the_lan_hub():
    master = from_env({})
    assert master.runs_lan_hub and master.lan_hub == ("127.0.0.1", 4444)
    assert (master.lan_listen, master.lan_wait) == ("0.0.0.0", 300.0)
    peer = from_env({"INSTANCE_ID": "instance-1", "SOCKET_MASTER_HOST": "m", "LOCO_LAN_WAIT": "30"})
    assert not peer.runs_lan_hub and peer.lan_hub == ("m", 4444) and peer.lan_wait == 30.0
    assert not from_env({"NETWORK_MODE": "user"}).runs_lan_hub


def test_socket_peer_needs_a_master():
    with pytest.raises(LocoError, match="SOCKET_MASTER_HOST is unset: instance-1"):
        from_env({"INSTANCE_ID": "instance-1"})
    assert from_env({"INSTANCE_ID": "instance-1", "NETWORK_MODE": "user"}).network_mode == "user"


def test_softgpu_snapshot_selects_vmware_vga():
    assert from_env({"SNAPSHOT_TAG": "win98-softgpu"}).vga == "vmware"
    assert from_env({"SNAPSHOT_TAG": "win98-softgpu", "LOCO_VGA": "std"}).vga == "std"


def test_memory_accepts_a_unit_suffix():
    assert from_env({"QEMU_MEMORY": "256M"}).memory_mb == 256


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"QEMU_MEMORY": "lots"}, "QEMU_MEMORY='lots': expected a whole number"),
        ({"QEMU_SMP": "0"}, "QEMU_SMP='0': expected a number from 1 to 16"),
        ({"NETWORK_MODE": "token-ring"}, "NETWORK_MODE='token-ring': expected one of"),
        ({"LOCO_VGA": "voodoo"}, "LOCO_VGA='voodoo'"),
        ({"LOCO_DISK_READONLY": "maybe"}, "LOCO_DISK_READONLY='maybe': expected true or false"),
        ({"LOCO_MAC": "52:54"}, "LOCO_MAC='52:54'"),
        ({"LOCO_LAN_WAIT": "forever"}, "LOCO_LAN_WAIT='forever': expected a whole number"),
        ({"VNC_PASSWORD": ""}, "the VNC password is empty"),
        (
            {"LOCO_VNC_PASSWORD_FILE": "/nonexistent/pw"},
            "LOCO_VNC_PASSWORD_FILE=/nonexistent/pw: cannot read",
        ),
    ],
)
def test_bad_values_fail_with_their_name(env, message):
    with pytest.raises(LocoError) as caught:
        from_env(env)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_password_file_drops_the_trailing_newline(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert from_env({"LOCO_VNC_PASSWORD_FILE": str(secret), "VNC_PASSWORD": "other"}).vnc_password == "s3cret"


@pytest.mark.parametrize("value", ["true", "1", "YES", "on"])
def test_readonly_flag(value):
    assert from_env({"LOCO_DISK_READONLY": value}).disk_readonly
