"""Code lists as versioned reference data, loaded from `data/`, never enums spread in code.

A new release of a standard (HMIS changes yearly) is a new data file and a new version; the
models validate against whatever the current version says.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from pydantic import BaseModel

DATA = Path(__file__).resolve().parent / "data"
CURRENT = "casework-2026.1.json"
MISSING_REASONS = frozenset({"8", "9", "99"})


class Code(BaseModel):
    code: str
    label: str


class CodeList(BaseModel):
    name: str
    version: str
    codes: list[Code]


class Catalogue(BaseModel):
    version: str
    source: str
    lists: dict[str, list[Code]]

    def code_list(self, name: str) -> CodeList | None:
        codes = self.lists.get(name)
        return CodeList(name=name, version=self.version, codes=codes) if codes is not None else None

    def codes(self, name: str) -> frozenset[str]:
        return frozenset(code.code for code in self.lists[name])


@cache
def catalogue() -> Catalogue:
    return Catalogue.model_validate(json.loads((DATA / CURRENT).read_text()))


def check_code(list_name: str, value: str) -> str:
    """A pydantic-friendly check: the value must be a code of the current list."""
    allowed = catalogue().codes(list_name)
    if value not in allowed:
        raise ValueError(f"not a code of {list_name} ({catalogue().version}): {sorted(allowed)}")
    return value
