"""SQL ``LIKE`` patterns as Flight SQL metadata filters use them.

The filter patterns of ``CommandGetDbSchemas`` and ``CommandGetTables``
(``db_schema_filter_pattern``, ``table_name_filter_pattern``) follow SQL
``LIKE``: ``%`` matches any run of characters (also none), ``_`` exactly one
character, and the search-string escape this server advertises
(``SQL_SEARCH_STRING_ESCAPE``, a backslash) makes the character after it
literal, so ``\\_`` is an underscore, ``\\%`` a percent sign and ``\\\\`` a
backslash.  Every other character stands for itself.  A pattern matches the
whole name, case-sensitively.
"""

from __future__ import annotations

import functools
import re

from flightsql.errors import InvalidArgument

__all__ = ["like_to_regex", "matches"]

DEFAULT_ESCAPE = "\\"


@functools.lru_cache(maxsize=256)
def like_to_regex(pattern: str, escape: str = DEFAULT_ESCAPE) -> re.Pattern[str]:
    """Compile a ``LIKE`` pattern into a regular expression anchored at both ends.

    ``escape`` is the escape character; an empty string disables escaping.
    Raises :class:`InvalidArgument` when the pattern ends in a lone escape
    character, which leaves nothing for it to escape.
    """
    if len(escape) > 1:
        raise ValueError(f"the escape must be a single character, not {escape!r}")
    parts: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if escape and char == escape:
            literal = next(chars, None)
            if literal is None:
                raise InvalidArgument(
                    f"pattern {pattern!r} ends with the escape character {escape!r}"
                )
            parts.append(re.escape(literal))
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile(r"\A(?:" + "".join(parts) + r")\Z", re.DOTALL)


def matches(pattern: str | None, value: str) -> bool:
    """Whether ``value`` matches the ``LIKE`` pattern; no pattern matches everything."""
    if pattern is None:
        return True
    return like_to_regex(pattern).fullmatch(value) is not None
