"""Eligibility as data: each rule a CEL expression over the client's facts.

CEL (the Common Expression Language, `cel` from common-expression-language) is a standard,
side-effect-free expression language: no statements, no loops, no I/O, no access to anything
but the facts handed to it. A rule is compiled when it is saved (a rule that does not compile,
or that names a fact Casework does not know, is refused) and once per process when it is
evaluated (cached by its text).

Evaluation is three-valued: `passed`, `failed`, or `unknown` when the rule needs a fact the
client has not given (or when it cannot be evaluated, e.g. it compares a number with a text):
a missing fact is never held against the client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any

import cel
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_EXPRESSION = 2000
# CEL's standard functions (operators such as `_&&_` aside): anything else would fail when the
# rule is evaluated, so it is refused when the rule is saved.
FUNCTIONS = frozenset({
    "size", "startsWith", "endsWith", "contains", "matches", "int", "uint", "double", "string",
    "bool", "bytes", "dyn", "type", "has", "exists", "all", "exists_one", "map", "filter",
    "timestamp", "duration",
})  # fmt: skip
_OPERATOR = re.compile(r"^@\w+$|.*[^A-Za-z0-9_.]")
# The variable a macro binds (`need_categories.exists(n, n == 'food')`) is listed among an
# expression's variables, but it is not a fact.
_BOUND = re.compile(r"\.\s*(?:exists_one|exists|all|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")


class ClientFacts(BaseModel):
    """What a rule may ask about a client. Each one may be unknown (null)."""

    model_config = ConfigDict(extra="forbid")

    age: int | None = Field(default=None, ge=0, le=130)
    household_size: int | None = Field(default=None, ge=1, le=50)
    postal_area: str | None = Field(
        default=None,
        max_length=10,
        pattern=r"^[A-Za-z0-9 ]+$",
        description="The start of the postal code (intake sends its first three characters).",
    )
    need_categories: (
        list[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]] | None
    ) = Field(default=None, max_length=50, description="Need categories (intake's vocabulary).")
    language: str | None = Field(default=None, max_length=35, description="ISO 639 code.")
    sex: str | None = Field(default=None, max_length=20)
    income_band: str | None = Field(default=None, max_length=40)
    risk_level: str | None = Field(default=None, max_length=20)
    priority: int | None = Field(default=None, ge=1, le=10, description="1 is the most urgent.")
    need_severities: dict[str, str] | None = Field(
        default=None, max_length=50, description="Need category -> low, moderate or high."
    )

    def context(self) -> dict[str, Any]:
        return {name: value for name, value in self.model_dump().items() if value is not None}


FACTS: tuple[str, ...] = tuple(ClientFacts.model_fields)


class RuleError(ValueError):
    """A rule that cannot be saved: it does not compile, or it names an unknown fact."""


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    UNKNOWN = "unknown"


class RuleResult(BaseModel):
    rule_id: str
    description: str
    outcome: Outcome
    detail: str | None = Field(
        default=None, description="Why the outcome is unknown: the facts missing, or the error."
    )


@lru_cache(maxsize=65_536)
def compiled(expression: str) -> Any:
    """The compiled program of an expression (raises RuleError when it does not compile)."""
    if len(expression) > MAX_EXPRESSION:
        raise RuleError(f"longer than {MAX_EXPRESSION} characters")
    try:
        program = cel.compile(expression)
    except Exception as error:  # the parser's errors are ValueError; anything else alike
        raise RuleError(str(error) or type(error).__name__) from None
    bound = set(_BOUND.findall(expression))
    unknown = sorted(set(program.variables()) - set(FACTS) - bound)
    if unknown:
        raise RuleError(f"unknown fact {', '.join(unknown)}; rules may use: {', '.join(FACTS)}")
    functions = sorted(
        name for name in program.references()["functions"]
        if not _OPERATOR.match(name) and name not in FUNCTIONS
    )  # fmt: skip
    if functions:
        raise RuleError(f"unknown function {', '.join(functions)}")
    return program


def check(expression: str) -> None:
    """Raise RuleError when the expression cannot be saved."""
    compiled(expression)


@dataclass(frozen=True, slots=True, eq=False)
class Prepared:
    """An expression ready to run: its program and the facts it names, worked out once (one
    object per expression while it is cached: equal by identity, a key for memoising)."""

    expression: str
    program: Any | None
    facts: frozenset[str]
    error: str | None = None


@lru_cache(maxsize=65_536)
def prepare(expression: str) -> Prepared:
    try:
        program = compiled(expression)
    except RuleError as error:
        return Prepared(expression, None, frozenset(), f"the rule does not compile: {error}")
    return Prepared(expression, program, frozenset(program.variables()) & frozenset(FACTS))


def judge(prepared: Prepared, context: dict[str, Any]) -> tuple[Outcome, str | None]:
    """A rule's outcome and why it is unknown (None otherwise)."""
    if prepared.program is None:
        return Outcome.UNKNOWN, prepared.error
    missing = sorted(prepared.facts - context.keys())
    if missing:
        return Outcome.UNKNOWN, f"not known about the client: {', '.join(missing)}"
    try:
        value = prepared.program.execute(context)
    except Exception as error:  # type mismatches, overflow, ...: the rule cannot say
        return Outcome.UNKNOWN, f"could not be evaluated: {error}"
    if value is True:
        return Outcome.PASSED, None
    if value is False:
        return Outcome.FAILED, None
    return Outcome.UNKNOWN, "the rule does not give true or false"


def evaluate(
    rule_id: str, description: str, expression: str, context: dict[str, Any]
) -> RuleResult:
    outcome, detail = judge(prepare(expression), context)
    return RuleResult(rule_id=rule_id, description=description, outcome=outcome, detail=detail)
