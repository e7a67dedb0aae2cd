"""What counts as a break-glass reason: a sentence that says something, for the audit trail.

The rule (checked on `X-Break-Glass-Reason`; otherwise 422 and the glass stays shut):
- at least 10 characters once surrounding spaces are trimmed (at most 500);
- at least two words of three or more letters (any script), so "..........", spaces, digits
  or "x y z ..." do not pass;
- at least five different letters, so one repeated character ("aaaaaaaaaa", "aaa aaa aaa")
  does not pass.
A rule cannot tell a true reason from a made-up one; the reason is kept in the audit trail,
next to who gave it, for someone to read.
"""

from __future__ import annotations

import re

MIN_LENGTH = 10
MAX_LENGTH = 500
MIN_WORDS = 2
MIN_DISTINCT_LETTERS = 5

# A word: three or more letters in a row ([^\W\d_] is a letter in any script).
_WORD = re.compile(r"[^\W\d_]{3,}")


def substantive_reason(value: str) -> str:
    """The trimmed reason, or ValueError saying what it lacks."""
    reason = value.strip()
    if len(reason) < MIN_LENGTH:
        raise ValueError(f"a break-glass reason has at least {MIN_LENGTH} characters")
    if len(_WORD.findall(reason)) < MIN_WORDS:
        raise ValueError(
            f"a break-glass reason has at least {MIN_WORDS} words of three or more letters"
        )
    if len({c.casefold() for c in reason if c.isalpha()}) < MIN_DISTINCT_LETTERS:
        raise ValueError(
            f"a break-glass reason uses at least {MIN_DISTINCT_LETTERS} different letters"
        )
    return reason
