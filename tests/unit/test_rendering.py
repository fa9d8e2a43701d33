"""Templates rendered in the sandbox: the variables, escaping, and what is refused."""

from __future__ import annotations

from datetime import date

import pytest

from domain.occasions import OCCASIONS
from greetings.rendering import (
    MAX_SOURCE_LENGTH,
    Template,
    TemplateProblem,
    built_in,
    check,
    render,
    variables_for,
)

ADA = variables_for("Ada", "Lovelace", date(2026, 12, 10), date(1990, 12, 10), None, "GB")


def test_the_built_in_template_says_what_the_service_always_said():
    for occasion in OCCASIONS:
        rendered = render(built_in(occasion), ADA)
        assert rendered.text == occasion.greeting("Ada", "Lovelace")
        assert rendered.html is None
    assert render(built_in(OCCASIONS.by_type("BIRTHDAY")), ADA).subject == "Happy birthday, Ada!"


def test_years_count_from_the_original_date_and_a_missing_city_is_empty():
    assert ADA["years"] == 36 and ADA["full_name"] == "Ada Lovelace"
    rendered = render(Template("{{ years }}", "[{{ city }}] {{ country }}"), ADA)
    assert (rendered.subject, rendered.text) == ("36", "[] GB")


def test_html_is_escaped_and_text_is_not():
    names = variables_for("<b>Ada</b>", "&", date(2026, 1, 1), date(2000, 1, 1), None, None)
    rendered = render(
        Template("{{ first_name }}", "{{ full_name }}", "<p>{{ first_name }}</p>"), names
    )
    assert rendered.text == "<b>Ada</b> &"
    assert rendered.html == "<p>&lt;b&gt;Ada&lt;/b&gt;</p>"


def test_the_subject_is_one_line():
    rendered = render(Template("Happy\n  birthday,\t{{ first_name }}\n", "x"), ADA)
    assert rendered.subject == "Happy birthday, Ada"


@pytest.mark.parametrize(
    ("template", "field", "line"),
    [
        (Template("ok", "a\nb\n{{ unknown }}"), "text", 3),
        (Template("{{ ''.__class__ }}", "ok"), "subject", 1),
        (Template("ok", "ok", "{{ first_name.__init__.__globals__ }}"), "html", 1),
        (Template("ok", "{% for x in 'ab' %}{{ x }}{% endfor %}"), "text", 1),
        (Template("ok", "{% macro m() %}x{% endmacro %}{{ m() }}"), "text", 1),
        (Template("ok", "{% include 'other' %}"), "text", 1),
        (Template("ok", "{{ lipsum() }}"), "text", 1),
        (Template("ok", "{{ cycler }}"), "text", 1),
        (Template("ok", "{{ 'a' * 9 }}"), "text", 1),
        (Template("ok", "{{ first_name|format }}"), "text", 1),
        (Template("ok", "{{ 99999 }}"), "text", 1),
        (Template("ok", "{{ first_name "), "text", 1),
        (Template("ok", "{% if years %}"), "text", 1),
        (Template("ok", "{% if false %}x{% endif %}"), "text", None),
        (Template("ok", "x" * (MAX_SOURCE_LENGTH + 1)), "text", None),
    ],
)
def test_a_template_that_could_not_be_sent_as_written_is_refused_with_field_and_line(
    template, field, line
):
    with pytest.raises(TemplateProblem) as refused:
        check(template)

    assert refused.value.field == field
    assert refused.value.line == line


def test_a_template_within_the_language_passes():
    check(
        Template(
            "{{ first_name|title }}, {{ years }}!",
            "{% if years >= 18 and country == 'GB' %}Cheers{% elif city %}Hi{% else %}Hey"
            "{% endif %} {{ occasion_date.strftime('%d %B') }} {{ full_name[:1] ~ '.' }}",
            "<p>{{ last_name|upper }}</p>",
        )
    )
