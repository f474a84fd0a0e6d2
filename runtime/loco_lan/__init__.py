"""loco.lan runtime: services, clients and the ``loco`` command."""

__version__ = "0.1.0"
