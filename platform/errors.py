"""The one error type users see: what went wrong, where, and how to fix it.

Every failure a user can act on (bad input, a missing file, a tampered bundle, an
unknown plugin) is raised as :class:`VfmError`. The CLI prints ``str(err)`` as a
single line and exits non-zero; the Gradio app shows it as an error message.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from typing import Any


class VfmError(Exception):
    """A user-actionable error, rendered as one line: ``what [where] — fix: how``.

    Args:
        what: what went wrong, in plain words.
        where: the file, field, plugin or URL concerned.
        fix: how the user can fix it.
    """

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None):
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        text = self.what
        if self.where:
            text += f" [{self.where}]"
        if self.fix:
            text += f" — fix: {self.fix}"
        return " ".join(text.split())

    def public(self) -> str:
        """:meth:`render` for someone who is not on the server (the app's error messages): every
        absolute path is cut to its last component, so no server folder is disclosed."""
        return _ABSOLUTE_PATH.sub(lambda m: m.group(1) + m.group(2).rstrip("/").rsplit("/", 1)[-1], self.render())


_ABSOLUTE_PATH = re.compile(r"(^|[\s\[('\"=])(/[^\s\]')\",]+)")
"""An absolute POSIX path after a space, bracket, quote or ``=`` (group 2), with what precedes it (group 1)."""


def print_json_or_error(compute: Callable[[], Any]) -> int:
    """For a module's command line: print ``compute()`` as indented JSON and return 0, or print
    its :class:`VfmError` as one ``error:`` line on stderr and return 1."""
    try:
        result = compute()
    except VfmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0
