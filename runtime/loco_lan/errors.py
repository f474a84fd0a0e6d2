"""The one exception type the runtime raises for problems a user can act on.

The CLI prints it as one line and exits non-zero; Ansible modules turn it into
``fail_json``.  Anything else escaping is a bug.
"""


class LocoError(Exception):
    """A failure with a message fit for the user."""
