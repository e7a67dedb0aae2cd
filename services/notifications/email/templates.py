"""E-mail messages in the recipient's language: Jinja2 templates as files, Babel catalogues.

Each message is a template (`templates/<key>.j2`, a `subject` and a `body` block, the words in
`{% trans %}` blocks) and one catalogue per language besides English, the templates' own
language (`locales/<language>/LC_MESSAGES/messages.po`). Catalogues are read as `.po` with
Babel's `read_po` when the service starts: nothing to compile on a fresh machine, and no `.mo`
file that can fall behind its `.po`.

Loading checks everything once: every template compiles, and every message of every template
is translated (not empty, not fuzzy) in every catalogue. A template missing a language is an
error at load (`CatalogueError`), so the service does not start, rather than an e-mail going
out half in English. A recipient's language without a catalogue gets English.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template
from jinja2.ext import babel_extract

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
LOCALES_DIR = HERE / "locales"
SOURCE_LANGUAGE = "en"
FALLBACK_TEMPLATE = "notification"
SUFFIX = ".j2"
_GETTEXT = ("gettext", "ngettext", "_")


class CatalogueError(ValueError):
    """A template that does not compile, or a message missing from a language's catalogue."""


@dataclass(frozen=True)
class RenderedEmail:
    language: str
    subject: str
    body: str


def _translations(catalog: Catalog) -> Translations:
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(fp=compiled)


def _environment(translations: Translations | None, templates_dir: Path) -> Environment:
    environment = Environment(
        loader=FileSystemLoader(templates_dir),
        extensions=["jinja2.ext.i18n"],
        autoescape=False,  # plain-text mail; parameters are ids and codes we built
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    if translations is None:
        environment.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    else:
        environment.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    return environment


def _messages(path: Path) -> list[tuple[int, str]]:
    """Each message id (the singular of a plural) a template uses, with its line."""
    found: list[tuple[int, str]] = []
    with path.open("rb") as source:
        for line, _function, message, _comments in babel_extract(
            source, _GETTEXT, [], {"extensions": "jinja2.ext.i18n"}
        ):
            msgid = message[0] if isinstance(message, tuple) else message
            if msgid:
                found.append((line, msgid))
    return found


def _missing(catalog: Catalog, msgid: str) -> bool:
    entry = catalog.get(msgid)
    if entry is None or entry.fuzzy:
        return True
    strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
    return not strings or any(not s for s in strings)


class EmailTemplates:
    def __init__(self, templates_dir: Path = TEMPLATES_DIR, locales_dir: Path = LOCALES_DIR):
        self.templates_dir = templates_dir
        self.keys = sorted(path.stem for path in templates_dir.glob(f"*{SUFFIX}"))
        if FALLBACK_TEMPLATE not in self.keys:
            raise CatalogueError(f"{templates_dir}: no {FALLBACK_TEMPLATE}{SUFFIX}")
        catalogs: dict[str, Catalog] = {}
        for po in sorted(locales_dir.glob("*/LC_MESSAGES/messages.po")):
            language = po.parent.parent.name
            with po.open("rb") as source:
                catalogs[language] = read_po(source, locale=language)
        self.environments: dict[str, Environment] = {
            SOURCE_LANGUAGE: _environment(None, templates_dir),
            **{lang: _environment(_translations(c), templates_dir) for lang, c in catalogs.items()},
        }
        self._check(catalogs)

    @property
    def languages(self) -> list[str]:
        return sorted(self.environments)

    def _check(self, catalogs: Mapping[str, Catalog]) -> None:
        problems: list[str] = []
        for key in self.keys:
            path = self.templates_dir / f"{key}{SUFFIX}"
            try:
                template = self.environments[SOURCE_LANGUAGE].get_template(path.name)
            except Exception as error:
                problems.append(f"{path.name}: does not compile: {error}")
                continue
            for block in ("subject", "body"):
                if block not in template.blocks:
                    problems.append(f"{path.name}: no {block} block")
            for line, msgid in _messages(path):
                for language, catalog in catalogs.items():
                    if _missing(catalog, msgid):
                        problems.append(
                            f"{path.name}:{line}: not translated into {language!r}: {msgid!r}"
                        )
        if problems:
            raise CatalogueError("e-mail templates and catalogues:\n  " + "\n  ".join(problems))

    def language_for(self, wanted: str | None) -> str:
        """The recipient's language if there is a catalogue for it (or for its primary
        subtag: `es-MX` -> `es`), else English."""
        if wanted:
            for candidate in (wanted, wanted.split("-")[0].split("_")[0]):
                if candidate.lower() in self.environments:
                    return candidate.lower()
        return SOURCE_LANGUAGE

    def render(
        self, key: str, language: str | None, parameters: Mapping[str, Any]
    ) -> RenderedEmail:
        chosen = self.language_for(language)
        name = key if key in self.keys else FALLBACK_TEMPLATE
        template = self.environments[chosen].get_template(f"{name}{SUFFIX}")
        return RenderedEmail(
            language=chosen,
            subject=" ".join(_block(template, "subject", parameters).split()),
            body=_block(template, "body", parameters).strip() + "\n",
        )


def _block(template: Template, name: str, parameters: Mapping[str, Any]) -> str:
    context = template.new_context(dict(parameters))
    return "".join(template.blocks[name](context))


@cache
def email_templates() -> EmailTemplates:
    """The shipped templates and catalogues, loaded and checked once per process."""
    return EmailTemplates()
