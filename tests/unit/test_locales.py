"""BCP 47 tags: one spelling each, and the fallbacks a greeting's template is chosen by."""

from __future__ import annotations

import pytest

from domain.locales import DEFAULT, InvalidLocale, canonical, fallbacks


@pytest.mark.parametrize(
    ("tag", "spelled"),
    [
        ("en", "en"),
        ("EN", "en"),
        ("pt-br", "pt-BR"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("de-CH-1996", "de-CH-1996"),
        ("sl-rozaj", "sl-rozaj"),
        ("Default", DEFAULT),
    ],
)
def test_a_tag_has_one_spelling(tag, spelled):
    assert canonical(tag) == spelled


@pytest.mark.parametrize(
    "tag", ["", "e", "english", "en_US", "en-", "-en", "en--US", "en-US-x", "ü", "en " * 20]
)
def test_what_is_not_a_language_tag_is_refused(tag):
    with pytest.raises(InvalidLocale):
        canonical(tag)


@pytest.mark.parametrize(
    ("tag", "chain"),
    [
        (None, [DEFAULT]),
        ("default", [DEFAULT]),
        ("fr", ["fr", DEFAULT]),
        ("pt-BR", ["pt-BR", "pt", DEFAULT]),
        ("zh-Hant-TW", ["zh-Hant-TW", "zh-Hant", "zh", DEFAULT]),
    ],
)
def test_the_closest_locale_comes_first_and_default_last(tag, chain):
    assert fallbacks(tag) == chain
