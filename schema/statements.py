"""Split a SQL script into statements, so a failing one can be located by line.

Understands what plain SQL migration files contain: '…' and E'…' strings,
"…" identifiers, -- and /* */ comments, and $tag$…$tag$ bodies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")


@dataclass(frozen=True)
class Statement:
    text: str
    line: int  # 1-based line of the script where the statement starts


def split_statements(script: str) -> list[Statement]:
    """The script's statements in order, each with its starting line; empty ones dropped."""
    statements: list[Statement] = []
    start = 0
    i = 0
    n = len(script)
    while i < n:
        char = script[i]
        if char == ";":
            _append(statements, script, start, i)
            start = i + 1
            i += 1
        else:
            i = _skip_token(script, i)
    _append(statements, script, start, n)
    return statements


def _skip_token(script: str, i: int) -> int:
    """Index just past the quoted/comment token starting at i (or i + 1)."""
    rest = script[i : i + 2]
    if rest == "--":
        end = script.find("\n", i)
        return len(script) if end < 0 else end + 1
    if rest == "/*":
        end = script.find("*/", i + 2)
        return len(script) if end < 0 else end + 2
    char = script[i]
    if char == "'":
        escaped = i > 0 and script[i - 1] in "eE" and not _is_word(script, i - 2)
        return _skip_quoted(script, i, "'", backslash=escaped)
    if char == '"':
        return _skip_quoted(script, i, '"', backslash=False)
    if char == "$" and not _is_word(script, i - 1):
        match = _DOLLAR_TAG.match(script, i)
        if match:
            end = script.find(match.group(0), match.end())
            return len(script) if end < 0 else end + len(match.group(0))
    return i + 1


def _skip_quoted(script: str, i: int, quote: str, backslash: bool) -> int:
    j = i + 1
    while j < len(script):
        if backslash and script[j] == "\\":
            j += 2
            continue
        if script[j] == quote:
            if script[j + 1 : j + 2] == quote:  # doubled quote inside the literal
                j += 2
                continue
            return j + 1
        j += 1
    return j


def _is_word(script: str, i: int) -> bool:
    return i >= 0 and (script[i].isalnum() or script[i] == "_")


def _append(statements: list[Statement], script: str, start: int, end: int) -> None:
    text = script[start:end]
    if not _strip_comments(text).strip():
        return
    leading = len(text) - len(text.lstrip())
    line = script.count("\n", 0, start + leading) + 1
    statements.append(Statement(text=text.strip(), line=line))


def _strip_comments(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        j = _skip_token(text, i)
        if text[i : i + 2] not in ("--", "/*"):
            out.append(text[i:j])
        i = j
    return "".join(out)
