"""The OpenAPI description and a docs page that renders with no internet."""

from __future__ import annotations

import re
from html.parser import HTMLParser


class _AssetCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"src", "href"} and value:
                self.urls.append(value)


def _assets(html: str) -> list[str]:
    collector = _AssetCollector()
    collector.feed(html)
    return collector.urls


def test_docs_page_references_no_external_url(client):
    html = client.get("/docs").get_data(as_text=True)

    assert not re.search(r"https?://", html)
    assert len(_assets(html)) >= 3


def test_every_asset_of_the_docs_page_is_served_by_the_app(client):
    html = client.get("/docs").get_data(as_text=True)

    for url in _assets(html):
        response = client.get(url)
        assert response.status_code == 200, url
        assert len(response.data) > 1000, url


def test_docs_page_loads_the_spec_of_this_app(client):
    html = client.get("/docs").get_data(as_text=True)

    assert "/openapi.json" in html
    assert "swagger-ui-bundle.js" in html


def test_spec_has_title_version_description_and_tags(client):
    spec = client.get("/openapi.json").get_json()

    assert spec["openapi"].startswith("3.")
    assert spec["info"]["title"] == "Birthday Message Scheduler"
    assert spec["info"]["version"]
    assert "09:00" in spec["info"]["description"]
    assert {tag["name"] for tag in spec["tags"]} >= {"users", "health"}


def test_spec_documents_every_route(client, app):
    spec = client.get("/openapi.json").get_json()
    documented = set(spec["paths"])

    assert documented >= {
        "/users",
        "/users/{user_id}",
        "/health",
        "/health/live",
        "/health/db",
    }


def test_spec_requires_the_bearer_scheme_except_on_liveness_and_readiness(client):
    spec = client.get("/openapi.json").get_json()

    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}  # the Authorize button
    assert spec["security"] == [{"bearerAuth": []}]  # every operation, reads included
    assert "security" not in spec["paths"]["/users"]["get"]  # inherits the document's
    assert {"401", "403"} <= set(spec["paths"]["/users"]["get"]["responses"])
    assert spec["paths"]["/health/live"]["get"]["security"] == []
    assert spec["paths"]["/health"]["get"]["security"] == []


def test_spec_gives_request_examples_and_error_responses(client):
    spec = client.get("/openapi.json").get_json()
    post = spec["paths"]["/users"]["post"]

    example = post["requestBody"]["content"]["application/json"]["example"]
    assert example["timezone"] == "Europe/London"
    assert {"201", "401", "409", "413", "415", "422"} <= set(post["responses"])
    patch = spec["paths"]["/users/{user_id}"]["patch"]
    assert {"200", "404", "409", "422"} <= set(patch["responses"])
