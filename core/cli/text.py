"""Text from outside (prompts, file names, what a file's credentials say) made safe for
a terminal.

A prompt or file name may hold control characters: an escape sequence that retitles the
window or clears the screen (``\\x1b]0;title\\x07``, ``\\x1b[2J``), a carriage return that
overwrites the start of the line, a newline that forges a line of output. Human output
shows each one escaped, as Python writes it in a string (``\\x1b``, ``\\r``, ``\\n``); JSON
output keeps the exact string. Every human-readable line the CLI prints passes through
:func:`printable` (by way of ``say``, ``echo_err``, ``plain`` in :mod:`core.cli.base` and
the error line of :mod:`core.cli.lazy`), so no command has to remember it.

This module imports nothing: the error path of every command uses it.
"""

from __future__ import annotations

import re

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""C0 and C1 controls, DEL, the Unicode line separators and the bidirectional overrides
(which reorder what follows them on the line)."""


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character shown escaped; otherwise unchanged."""
    return _CONTROL.sub(_escape, text)
