"""Policy: the prompt names no protected person, character or brand.

Terms are matched as whole words, ignoring case and accents, so ``Beyonce``,
``BEYONCÉ`` and ``beyoncé`` are one name, and a multi-word name matches across any
spacing or punctuation, or none (``Mickey  Mouse``, ``Mickey-Mouse``, ``MickeyMouse``).
Characters that draw nothing (a zero-width space or a soft hyphen inside a word) are
ignored, and the commonest Cyrillic and Greek look-alikes of Latin letters (see
:data:`LOOKALIKES`) match the letters they look like, so neither an invisible character
nor a Cyrillic ``с`` in "Miсkey" hides a name. An allow-list entry overrides a match it
contains: with ``Jordan`` protected and ``Jordan River`` allowed, "a boat on the Jordan
River" passes and "Jordan dunks" does not.

The list ships empty; ``examples/protected-names.example.toml`` shows one. Configure it
in ``config.toml``, inline or in a file of its own (a relative path is read from the
reelvault home folder)::

    [plugins.protected_names]
    terms = ["Mickey Mouse", "Darth Vader"]
    allow = ["Mickey Mouse ears hat"]
    file = "protected-names.toml"      # with its own terms = [...] and allow = [...]
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.api import (
    DerivedRequest,
    GenerationRequest,
    Outcome,
    PluginError,
    PolicyDecision,
    Settings,
    hookimpl,
)

NAME = "protected_names"
RULE = "names.protected"
_WORD = re.compile(r"\w+")


LOOKALIKES = {
    "a": "аαɑ",
    "b": "вβ",
    "c": "с",
    "e": "еε",
    "g": "ɡ",
    "h": "нһη",
    "i": "іιıӏ",
    "j": "ј",
    "k": "кκ",
    "l": "ӏ",
    "m": "мμ",
    "n": "ν",
    "o": "оο",
    "p": "рρ",
    "q": "ԛ",
    "s": "ѕ",
    "t": "тτ",
    "u": "υ",
    "v": "ν",
    "w": "ԝ",
    "x": "хχ",
    "y": "уүυ",
    "z": "ζ",
}
"""Letters that read as a Latin letter, by that letter (all case-folded, as text is
compared): the Cyrillic and Greek letters drawn like Latin ones in either case (Cyrillic
``с``, ``Н``, Greek ``Ρ``, ``ν``...) and a few Latin variants (dotless ``ı``, ``ɑ``,
``ɡ``). A small, explicit subset of Unicode's confusables (TR39) rather than all of it,
whose digit and letter-pair mappings (``0``/``O``, ``rn``/``m``) would match names that
are not there. Fullwidth and mathematical letters need no entry: NFKD folds them. A term
letter matches any of its look-alikes (and a look-alike in a term matches the letters
it could stand for), so ``Мiсkеу`` names Mickey while case still never matters."""


def _lookalike_groups() -> dict[str, frozenset[str]]:
    """Each letter of :data:`LOOKALIKES`, Latin or not, with every letter it may be read as
    (``ν`` is both an ``n`` and a ``v``)."""
    groups: dict[str, set[str]] = {}
    for latin, others in LOOKALIKES.items():
        for letter in (latin, *others):
            groups.setdefault(letter, set()).update(latin, others)
    return {letter: frozenset(group) for letter, group in groups.items()}


_LOOKS_LIKE = _lookalike_groups()

_DRAWS_NOTHING = {"Cf", "Mn", "Me"}
"""Format controls (zero-width spaces and joiners, soft hyphen, direction marks) and
marks (accents once NFKD has split them off, variation selectors)."""
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0")  # Hangul fillers: letters drawn blank


def normalize(text: str) -> str:
    """The text as it reads: NFKD, what draws nothing dropped, casefolded, NFKC."""
    decomposed = unicodedata.normalize("NFKD", text)
    visible = "".join(
        c
        for c in decomposed
        if not unicodedata.combining(c)
        and unicodedata.category(c) not in _DRAWS_NOTHING
        and c not in _FILLERS
    )
    return unicodedata.normalize("NFKC", visible.casefold())


def _letter_pattern(letter: str) -> str:
    """A normalized letter, or any of its look-alikes."""
    same = _LOOKS_LIKE.get(letter)
    return f"[{re.escape(''.join(sorted(same)))}]" if same else re.escape(letter)


@dataclass(frozen=True)
class Term:
    """A configured phrase and the pattern that finds it as whole words."""

    text: str
    pattern: re.Pattern[str]

    @classmethod
    def of(cls, text: str) -> Term | None:
        words = _WORD.findall(normalize(text))
        if not words:
            return None
        spelled = ("".join(map(_letter_pattern, word)) for word in words)
        body = r"[\W_]*".join(spelled)  # "MickeyMouse" names him too
        return cls(text.strip(), re.compile(rf"(?<!\w){body}(?!\w)"))

    def spans(self, normalized: str) -> list[tuple[int, int]]:
        return [m.span() for m in self.pattern.finditer(normalized)]


@dataclass(frozen=True)
class Lists:
    terms: tuple[Term, ...]
    allow: tuple[Term, ...]

    @classmethod
    def load(cls, settings: Settings) -> Lists:
        section = settings.section(NAME)
        terms = _strings(section, "terms", f"[plugins.{NAME}]")
        allow = _strings(section, "allow", f"[plugins.{NAME}]")
        if "file" in section:
            file_terms, file_allow = _read_file(settings, section["file"])
            terms += file_terms
            allow += file_allow
        return cls(_compile(terms), _compile(allow))

    def matches(self, prompt: str) -> list[str]:
        """The protected terms the prompt names outside every allowed phrase, in order."""
        text = normalize(prompt)
        allowed = [span for term in self.allow for span in term.spans(text)]
        found = []
        for term in self.terms:
            for start, end in term.spans(text):
                if not any(a <= start and end <= b for a, b in allowed):
                    found.append(term.text)
                    break
        return found


def _strings(table: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PluginError(f"{where} {key} must be a list of strings")
    return list(value)


def _read_file(settings: Settings, value: object) -> tuple[list[str], list[str]]:
    if not isinstance(value, str) or not value.strip():
        raise PluginError(f"[plugins.{NAME}] file must be a path")
    path = Path(value).expanduser()
    path = path if path.is_absolute() else settings.home / path
    try:
        with path.open("rb") as fh:
            table = tomllib.load(fh)
    except OSError as exc:
        raise PluginError(f"protected names file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PluginError(f"protected names file {path}: not valid TOML: {exc}") from None
    return _strings(table, "terms", str(path)), _strings(table, "allow", str(path))


def _compile(texts: Sequence[str]) -> tuple[Term, ...]:
    seen: dict[str, Term] = {}
    for text in texts:
        term = Term.of(text)
        if term is not None:
            seen.setdefault(term.pattern.pattern, term)
    return tuple(seen.values())


@hookimpl
def check_request(
    request: GenerationRequest | DerivedRequest, settings: Settings
) -> list[PolicyDecision]:
    lists = Lists.load(settings)
    if not lists.terms:
        return [PolicyDecision(Outcome.ALLOW, RULE, "no protected names are configured")]
    named = lists.matches(request.prompt)
    if not named:
        count = len(lists.terms)
        return [
            PolicyDecision(Outcome.ALLOW, RULE, f"the prompt names none of {count} protected terms")
        ]
    return [
        PolicyDecision(Outcome.DENY, RULE, f"the prompt names {term!r}, a protected name")
        for term in named
    ]
