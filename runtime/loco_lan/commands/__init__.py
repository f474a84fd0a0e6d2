"""Subcommands of ``loco``: each module here defines ``register(subparsers)``.

``register`` adds one subparser and sets ``func`` on it; ``func(args)`` returns
the process exit code.
"""
