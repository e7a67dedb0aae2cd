"""Planning's code lists (closure reasons, HMIS destinations) as versioned reference data,
loaded from `data/`: a new HMIS release is a new data file, not a code change."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from pydantic import BaseModel

DATA = Path(__file__).resolve().parent / "data"
CURRENT = "planning-2026.1.json"
CLOSURE_REASONS = "closure-reasons"
DESTINATIONS = "destinations"


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

    def code_list(self, name: str) -> CodeList:
        return CodeList(name=name, version=self.version, codes=self.lists[name])

    def codes(self, name: str) -> frozenset[str]:
        return frozenset(code.code for code in self.lists[name])


@cache
def catalogue() -> Catalogue:
    return Catalogue.model_validate(json.loads((DATA / CURRENT).read_text()))


def check_destination(value: str) -> str:
    """A pydantic-friendly check: an HMIS destination code of the current list."""
    if value not in catalogue().codes(DESTINATIONS):
        raise ValueError(
            f"not an HMIS destination code ({catalogue().version}); see "
            "GET /v1/code-lists/destinations"
        )
    return value
