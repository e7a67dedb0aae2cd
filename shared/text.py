"""The one validated text type for every free-text value a caller sends.

Every string is NFC-normalised (so "é" typed two ways is one value for search, duplicates and
comparisons) and stripped, then refused (422 naming the field) when it holds a character that
has no business in a case record and is a known attack or a known crash:

- NUL: PostgreSQL cannot store it in `text` or `jsonb` (the insert fails: a 500, before this);
- other C0 and C1 control characters and DEL (terminal escapes, log forging, CR/LF injection);
  only long free text (`multiline`) keeps line feed and tab;
- bidirectional overrides, embeddings, isolates and marks (U+202A-202E, U+2066-2069, U+200E,
  U+200F, U+061C): "Trojan Source" spoofing, a name that displays as another;
- zero-width characters (U+200B-200D, U+2060, U+FEFF): two names that look the same and are
  not, defeating the duplicate check;
- line and paragraph separators (U+2028, U+2029), and lone surrogates (not encodable: the
  database driver fails on them).

Identifiers are single-line text too (no CR/LF, no tab): they end up in headers, CSV exports and
log lines. Codes, ids and enums keep their own stricter types; this is for what people type.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from annotated_types import GroupedMetadata
from pydantic import AfterValidator, StringConstraints

_BIDI = {*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C}
_ZERO_WIDTH = {0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF}
_SEPARATORS = {0x2028, 0x2029}
_LINE_BREAKS = {ord("\n"), ord("\t")}


def refusal(value: str, *, multiline: bool = False) -> str | None:
    """Why `value` is not acceptable text, or None when it is."""
    for character in value:
        code = ord(character)
        if code == 0:
            return "must not contain NUL characters"
        if code < 0x20 or 0x7F <= code <= 0x9F:
            if multiline and code in _LINE_BREAKS:
                continue
            return "must not contain control characters" + (
                "" if multiline else " (it is a single line)"
            )
        if code in _BIDI:
            return "must not contain bidirectional control characters"
        if code in _ZERO_WIDTH:
            return "must not contain zero-width characters"
        if code in _SEPARATORS:
            return "must not contain line or paragraph separators"
        if 0xD800 <= code <= 0xDFFF:
            return "must not contain unpaired surrogates"
    return None


def clean(
    value: str, *, multiline: bool = False, min_length: int = 0, max_length: int | None = None
) -> str:
    """The normalised value, or ValueError (pydantic reports it as a 422 on the field)."""
    reason = refusal(value, multiline=multiline)
    if reason:
        raise ValueError(reason)
    normalised = unicodedata.normalize("NFC", value).strip()
    # NFC can lengthen a few code points; the documented limits hold after normalisation.
    if len(normalised) < min_length:
        raise ValueError(f"must have at least {min_length} characters")
    if max_length is not None and len(normalised) > max_length:
        raise ValueError(f"must have at most {max_length} characters")
    return normalised


@dataclass(frozen=True)
class FreeText(GroupedMetadata):
    """Use as `Annotated[str, FreeText(max_length=200)]`: the constraints are documented in the
    OpenAPI schema and checked on the raw value, then `clean` checks the characters and the
    limits again on the normalised value."""

    max_length: int
    min_length: int = 1
    multiline: bool = False
    pattern: str | None = None

    def __iter__(self) -> Iterator[Any]:
        yield StringConstraints(
            strip_whitespace=True,
            min_length=self.min_length,
            max_length=self.max_length,
            pattern=self.pattern,
        )
        yield AfterValidator(
            partial(
                clean,
                multiline=self.multiline,
                min_length=self.min_length,
                max_length=self.max_length,
            )
        )


# The common shapes; a model may annotate with its own `FreeText(...)`.
Name = Annotated[str, FreeText(max_length=100)]
ShortText = Annotated[str, FreeText(max_length=200)]
Note = Annotated[str, FreeText(max_length=1000, multiline=True)]
