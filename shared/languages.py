"""Language codes as every service takes them: ISO 639-1 or ISO 639-3, lower case."""

from __future__ import annotations

from typing import Annotated

import pycountry
from pydantic import AfterValidator, StringConstraints


def _iso_639(value: str) -> str:
    found = (
        pycountry.languages.get(alpha_2=value)
        if len(value) == 2
        else pycountry.languages.get(alpha_3=value)
    )
    if found is None:
        raise ValueError("not an ISO 639-1 or ISO 639-3 language code")
    return value


LanguageCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[a-zA-Z]{2,3}$"),
    AfterValidator(_iso_639),
]
