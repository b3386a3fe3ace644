"""Request bodies read strictly, and a readable copy of anything for the upload log.

JSON from outside may be nested thousands deep (the parser recurses), may carry NUL characters
(PostgreSQL text and JSONB cannot hold them) and lone UTF-16 surrogates (no UTF-8 encoding exists
for them). ``loads`` refuses each with a ``BodyError`` that says what is wrong and where, instead of
letting it crash a request further on. ``text_problem`` finds the first NUL or lone surrogate in a
parsed value (the envelope front checks each envelope of a list on its own, so one bad envelope never
costs the others); ``readable`` is the copy of a value the upload log can always store.
"""

from __future__ import annotations

import re
from typing import Any

from homediag.fhir_profiles import fhirjson

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects accepted: a PHD transaction Bundle is about 10 deep."""

# a NUL or a surrogate can only reach a parsed string through a \u escape (a raw NUL byte or the
# UTF-8-like bytes of a surrogate are refused by the parser): without one the text check is skipped
_ESCAPES = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


class BodyError(ValueError):
    """A body that cannot be taken: ``where`` names the place (``body``, or a path into the JSON)."""

    def __init__(self, text: str, where: str) -> None:
        super().__init__(text)
        self.where = where


def loads(body: bytes | str, *, max_depth: int = MAX_DEPTH, check_text: bool = True, root: str = "body") -> Any:
    """Parse JSON; refuse a body that is not JSON, nested deeper than ``max_depth``, or (``check_text``)
    holding a NUL character or a lone surrogate anywhere. Paths in errors start at ``root``."""
    try:
        value = fhirjson.loads(body)
    except RecursionError:
        raise BodyError(f"the JSON is nested deeper than {max_depth} levels{_deep_at(body, max_depth)}", root) from None
    except ValueError as exc:  # UnicodeDecodeError included: not UTF-8
        raise BodyError(f"the body is not JSON ({_short(str(exc))})", root) from None
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if raw.count(b"[") + raw.count(b"{") > max_depth and _deeper_than(value, max_depth):
        where = _too_deep(value, root, max_depth)
        if where is not None:
            raise BodyError(f"the JSON is nested deeper than {max_depth} levels (at {where})", where)
    if check_text and may_hold_bad_text(raw):
        problem = text_problem(value, root)
        if problem is not None:
            raise BodyError(*problem)
    return value


def may_hold_bad_text(raw: bytes) -> bool:
    """Whether JSON text ``raw`` holds a ``\\u`` escape through which a NUL or a lone surrogate could reach a parsed
    string; when not, ``text_problem`` finds nothing in anything parsed from it (a false alarm only costs the walk)."""
    return _ESCAPES.search(raw) is not None


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _deep_at(body: bytes | str, max_depth: int) -> str:
    """`` (at byte N)`` where the nesting first goes deeper than ``max_depth`` (strings skipped)."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    depth, in_string, escaped = 0, False, False
    for offset, byte in enumerate(raw):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > max_depth:
                return f" (at byte {offset})"
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return ""


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{parent}.{key}"
    return f"{parent}[{_describe_key(key)}]"


def _describe_key(key: str) -> str:
    """A member name as a path can show it: its bad characters escaped, shortened."""
    return repr(_short(escape_text(key), 40))


def _deeper_than(value: Any, max_depth: int) -> bool:
    """Whether arrays and objects nest deeper than ``max_depth``: a walk level by level, no paths (it
    runs on every large body, so it stays cheap)."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 1
    while level:
        if depth > max_depth:
            return True
        deeper = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:
                    deeper.append(child)
        level, depth = deeper, depth + 1
    return False


def _too_deep(value: Any, root: str, max_depth: int) -> str | None:
    """The path of the first array or object deeper than ``max_depth`` (only when there is one)."""
    stack: list[tuple[Any, str, int]] = [(value, root, 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict):
            items: Any = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            continue
        if depth > max_depth:
            return path
        stack.extend((child, _path(path, key), depth + 1) for key, child in items)
    return None


def text_problem(value: Any, root: str) -> tuple[str, str] | None:
    """The first NUL character or lone surrogate in ``value`` (member names included): what, and where."""
    stack: list[tuple[Any, str]] = [(value, root)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            bad = _BAD_TEXT.search(node)
            if bad is not None:
                return _what(bad.group(), f"the string at {path}", bad.start()), path
        elif isinstance(node, dict):
            for key, child in reversed(list(node.items())):
                bad = _BAD_TEXT.search(key)
                if bad is not None:
                    return _what(bad.group(), f"a member name in {path}", bad.start()), path
                stack.append((child, _path(path, key)))
        elif isinstance(node, list):
            stack.extend((child, _path(path, i)) for i, child in reversed(list(enumerate(node))))
    return None


def _what(char: str, place: str, position: int) -> str:
    if char == "\x00":
        return f"{place} holds a NUL character (\\u0000) at character {position}; text may not contain one"
    return (
        f"{place} holds a lone UTF-16 surrogate (\\u{ord(char):04x}) at character {position};"
        " it is no Unicode character (send the character itself, or a surrogate pair)"
    )


def escape_text(text: str) -> str:
    """``text`` with NULs and lone surrogates written as visible ``\\uXXXX`` escapes."""
    if _BAD_TEXT.search(text) is None:
        return text
    return _BAD_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def readable(value: Any) -> Any:
    """A copy of ``value`` that any store can hold: strings (and member names) with NULs and lone
    surrogates escaped (``\\u0000``, ``\\ud800``), the rest unchanged. The sealed body keeps the bytes."""
    if isinstance(value, str):
        return escape_text(value)
    if isinstance(value, dict):
        return {escape_text(str(k)): readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [readable(v) for v in value]
    return value
