"""SQL LIKE patterns as the metadata filters use them."""

from __future__ import annotations

import pytest

from flightsql.catalog.patterns import like_to_regex, matches
from flightsql.errors import InvalidArgument


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("%", "", True),
        ("%", "anything at all", True),
        ("sales", "sales", True),
        ("sales", "Sales", False),  # case-sensitive
        ("sales", "sales2", False),  # whole-string match
        ("sales", "my_sales", False),
        ("sal%", "sales", True),
        ("sal%", "sal", True),
        ("%les", "sales", True),
        ("%al%", "sales", True),
        ("s_les", "sales", True),
        ("s_les", "sles", False),
        ("s_les", "saales", False),
        ("___", "abc", True),
        ("___", "ab", False),
        ("a%b%c", "aXXbYYc", True),
        ("a%b%c", "aXXcYYb", False),
        ("", "", True),
        ("", "x", False),
    ],
)
def test_wildcards(pattern: str, value: str, expected: bool) -> None:
    assert matches(pattern, value) is expected


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("my\\_table", "my_table", True),
        ("my\\_table", "myXtable", False),
        ("100\\%", "100%", True),
        ("100\\%", "1000", False),
        ("a\\\\b", "a\\b", True),
        ("a\\\\b", "a\\\\b", False),
        ("a\\\\%", "a\\xyz", True),
        ("\\a", "a", True),  # an escaped ordinary character is itself
    ],
)
def test_escape_makes_the_next_character_literal(
    pattern: str, value: str, expected: bool
) -> None:
    assert matches(pattern, value) is expected


@pytest.mark.parametrize("literal", list(".*+?()[]{}^$|"))
def test_regex_metacharacters_are_literal(literal: str) -> None:
    assert matches(f"a{literal}b", f"a{literal}b")
    assert not matches(f"a{literal}b", "aXb")
    assert not matches(f"a{literal}b", "ab")


def test_percent_spans_newlines() -> None:
    assert matches("a%b", "a\nb")
    assert matches("a_b", "a\nb")


def test_no_pattern_matches_everything() -> None:
    assert matches(None, "")
    assert matches(None, "whatever")


@pytest.mark.parametrize("pattern", ["abc\\", "\\", "a%\\"])
def test_trailing_lone_escape_is_invalid(pattern: str) -> None:
    with pytest.raises(InvalidArgument):
        matches(pattern, "abc")


def test_escaped_escape_at_the_end_is_fine() -> None:
    assert matches("abc\\\\", "abc\\")


def test_other_escape_character() -> None:
    assert like_to_regex("a!_b", "!").fullmatch("a_b")
    assert not like_to_regex("a!_b", "!").fullmatch("axb")
    assert like_to_regex("a\\b", "!").fullmatch("a\\b")  # backslash is ordinary here


def test_no_escape_character() -> None:
    regex = like_to_regex("a\\_", "")
    assert regex.fullmatch("a\\x")
    assert not regex.fullmatch("a_")


def test_regex_is_anchored_for_match_and_search() -> None:
    regex = like_to_regex("b%")
    assert regex.match("bcd")
    assert not regex.search("abc")
    assert like_to_regex("b").match("b\n") is None  # no match before a final newline
