"""Greetings' wording: templates per occasion and locale, checked and rendered.

`rendering` is pure (Jinja2's sandbox, no I/O): the worker renders each greeting just
before it is sent, so a template change reaches every greeting not yet sent.
`templates` holds the use cases behind /templates; it joins its caller's transaction.
"""
