-- Greetings' wording people can edit (greetings/, /templates): per occasion and locale,
-- a subject, a text and optionally an HTML body, rendered by the worker just before it
-- sends. An occasion without a stored `default` uses the built-in wording of the
-- occasion registry (domain/occasions.py).
CREATE TABLE greeting_templates (
    message_type text NOT NULL,
    locale       text NOT NULL
                 CONSTRAINT greeting_templates_locale_format
                 CHECK (locale = 'default' OR locale ~ '^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$'),
    subject      text NOT NULL,
    body_text    text NOT NULL,
    body_html    text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_type, locale)
);

-- The locale a user's greetings are written in (a BCP 47 tag, kept in its
-- conventional case by the API); NULL: the `default` templates.
ALTER TABLE users ADD COLUMN locale text
    CONSTRAINT users_locale_format
    CHECK (length(locale) <= 35 AND locale ~ '^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$');

-- What was sent: message_content holds the text and this the subject, once SENT.
ALTER TABLE message_logs ADD COLUMN subject text;

-- The locales to look for, closest first: 'pt-BR' -> {pt-BR, pt, default}
-- (greetings' domain.locales.fallbacks says the same in Python; a test holds them).
CREATE FUNCTION locale_fallbacks(locale text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(
        array(
            SELECT array_to_string((string_to_array(locale, '-'))[1:n], '-')
            FROM generate_series(cardinality(string_to_array(locale, '-')), 1, -1) AS n
        ),
        '{}'
    ) || ARRAY['default']
$$;
