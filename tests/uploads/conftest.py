"""Upload fixtures (upload_dirs, shared with the browser tests, is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from uploads.models import UploadEvent


@pytest.fixture
def signed_in(client, owner, upload_dirs):
    """The owner's browser session (the test client skips CSRF checks unless asked)."""
    client.force_login(owner)
    return client


def only_event() -> UploadEvent:
    events = list(UploadEvent.objects.all())
    assert len(events) == 1, [e.code for e in events]
    return events[0]
