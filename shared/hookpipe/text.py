"""Small checks on text a sender or an operator wrote, defined once."""

from __future__ import annotations


def is_ascii_digits(text: str) -> bool:
    """Whether ``text`` is one or more of 0-9. ``str.isdigit()`` alone also takes '²' and other
    digits ``int()`` refuses (a ValueError, a 500, where a header or an attribute carried one)."""
    return text.isascii() and text.isdigit()
