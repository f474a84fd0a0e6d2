import pytest

from loco_lan.cli import build_parser, chosen_module, command_modules, main


def test_only_the_named_command_module_is_chosen():
    assert chosen_module(["-v", "boot-check", "--vnc", "127.0.0.1:5901"]) == "boot_check"
    assert chosen_module(["screen", "classify", "a.png"]) == "screen"
    assert chosen_module(["--help"]) is None
    assert chosen_module(["nope"]) is None
    assert chosen_module([]) is None


def test_every_command_module_registers_its_command():
    full = build_parser()
    commands = full._subparsers._group_actions[0].choices
    assert sorted(name.replace("-", "_") for name in commands) == command_modules()


def test_an_unknown_command_lists_them_all(capsys):
    with pytest.raises(SystemExit):
        main(["nope"])
    assert "boot-check" in capsys.readouterr().err
