"""The API docs (Swagger UI from drf-spectacular-sidecar) render under the seeded strict CSP."""

from __future__ import annotations

import pytest

from tests.browser.conftest import csp_violations, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_docs_list_the_upload_endpoint_without_csp_violations(page, live_server):
    page.goto(live_server.url + "/api/v1/docs/")
    operation = page.locator("#operations-uploads-uploads_create")
    operation.wait_for(timeout=15_000)
    assert "/api/v1/uploads/" in operation.inner_text()
    screenshot(page, "api-docs")
    assert csp_violations(page) == []
    errors = [m for m in page.console_messages if "rror" in m]
    assert errors == []
