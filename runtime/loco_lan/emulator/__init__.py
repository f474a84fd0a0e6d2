"""The emulator entrypoint: one QEMU running one Windows 98 guest, as the
container image and local runs start it (``python -m loco_lan.emulator`` or
``loco emulator run``). Settings come from the environment: see
:mod:`loco_lan.emulator.config`."""
