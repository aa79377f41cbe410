"""Helpers for the upload-operations tests: one upload through the API or the form, and
policies made through the services (so they are audited like an admin's)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from policies.models import UploadPolicy
from policies.services import Actor, policy_create, policy_update
from tests.uploads.http import Part, file_part, multipart

TEXT_TYPES = {"allowed_types": ["text/plain"], "allowed_extensions": ["txt"]}


def token_client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def api_upload(
    client, name: str, content: bytes, policy: str = "default", *, fields=(), **headers: Any
):
    """POST one file (and optional ordinary fields) to the uploads API."""
    extra = [Part(field, value.encode()) for field, value in fields]
    body, content_type = multipart(*extra, file_part(name, content))
    return client.post(
        f"/api/v1/uploads/?policy={policy}", body, content_type=content_type, **headers
    )


def form_upload(client, name: str, content: bytes, policy: str = "default", *, fields=()):
    """POST the upload page's form, as a browser would (its token field first)."""
    extra = [Part(field, value.encode()) for field, value in fields]
    body, content_type = multipart(*extra, file_part(name, content))
    return client.post(f"/upload/{policy}/", body, content_type=content_type)


def make_policy(actor: Actor, slug: str, **fields: Any) -> UploadPolicy:
    return policy_create(
        data={"slug": slug, **TEXT_TYPES, **fields},
        actor=actor,
        reason="test",
        rollback_note="delete it",
    )


def change_policy(actor: Actor, policy: UploadPolicy, **changes: Any) -> UploadPolicy:
    policy.refresh_from_db()
    return policy_update(
        policy=policy,
        changes=changes,
        version=policy.version,
        actor=actor,
        reason="test",
        rollback_note="change it back",
    )


def at_once(count: int, send: Callable[[int], int]) -> list[int]:
    """`send(index)` from `count` threads released together, each on its own database
    connection; what each returned (a status code)."""
    barrier, statuses = threading.Barrier(count), []

    def one(index: int) -> None:
        try:
            barrier.wait()
            statuses.append(send(index))
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses
