"""Locales of greetings: BCP 47 language tags, their one spelling, and fallbacks.

A tag is a language (2-3 letters), then optionally a script (4 letters), a region (2
letters or 3 digits) and variants: `en`, `pt-BR`, `zh-Hant-TW`, `de-CH-1996`. Tags
compare case-insensitively and are kept in their conventional case (language lower,
script title, region upper). `default` names the templates used when nothing closer
exists. A greeting uses the closest template: `pt-BR` -> `pt` -> `default`.
"""

from __future__ import annotations

import re

DEFAULT = "default"

_TAG = re.compile(
    r"(?P<language>[a-z]{2,3})"
    r"(?:-(?P<script>[a-z]{4}))?"
    r"(?:-(?P<region>[a-z]{2}|\d{3}))?"
    r"(?P<variants>(?:-(?:[a-z0-9]{5,8}|\d[a-z0-9]{3}))*)",
    re.IGNORECASE,
)
MAX_LENGTH = 35


class InvalidLocale(ValueError):
    """Not a BCP 47 language tag this service takes."""


def canonical(tag: str) -> str:
    """The one spelling of a language tag (or `default`); InvalidLocale if it is none."""
    if not isinstance(tag, str) or len(tag) > MAX_LENGTH:
        raise InvalidLocale("must be a BCP 47 language tag such as en, fr or pt-BR")
    if tag.lower() == DEFAULT:
        return DEFAULT
    match = _TAG.fullmatch(tag)
    if not match:
        raise InvalidLocale("must be a BCP 47 language tag such as en, fr or pt-BR")
    parts = [match["language"].lower()]
    if match["script"]:
        parts.append(match["script"].title())
    if match["region"]:
        parts.append(match["region"].upper())
    parts += [variant.lower() for variant in match["variants"].split("-") if variant]
    return "-".join(parts)


def fallbacks(tag: str | None) -> list[str]:
    """The locales to look for, closest first, ending with `default`:
    `zh-Hant-TW` -> [zh-Hant-TW, zh-Hant, zh, default]."""
    if not tag or canonical(tag) == DEFAULT:
        return [DEFAULT]
    parts = canonical(tag).split("-")
    return ["-".join(parts[:length]) for length in range(len(parts), 0, -1)] + [DEFAULT]
