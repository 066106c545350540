"""The one exception base for mistakes a user can fix (a name, key, path or file).

The command line prints these as a one-line `error: ...` and exits 2, without a traceback;
anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user: the message names the offending thing and what to do."""
