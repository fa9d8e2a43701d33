"""The SQL that picks a greeting's template (migration 0015's locale_fallbacks) and the
Python that states the rule (domain.locales.fallbacks) say the same."""

from __future__ import annotations

import pytest

from domain.locales import fallbacks

TAGS = [None, "en", "pt-BR", "zh-Hant-TW", "es-419", "de-CH-1996"]


@pytest.mark.parametrize("tag", TAGS)
def test_sql_and_python_look_for_the_same_locales_in_the_same_order(conn, tag):
    row = conn.execute("SELECT locale_fallbacks(%s::text) AS chain", (tag,)).fetchone()

    assert row["chain"] == fallbacks(tag)
