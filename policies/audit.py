"""The audit chain: append one entry under a lock, and verify the whole chain.

Each entry's HMAC covers the canonical JSON of its content (as read back from the database, so
PostgreSQL's jsonb key order does not matter) and the previous entry's hash. The head row holds the
count and the last hash under its own HMAC, so removing the newest row is caught too. The key
lives outside the database; older keys stay usable for verification after a rotation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from policies.models import AuditEntry, AuditHead, audit_writes

GENESIS_HASH = "0" * 64

# The fields an entry's HMAC covers, in the order they are documented.
HASHED_FIELDS = (
    "seq",
    "created_at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "before",
    "after",
    "diff",
    "reason",
    "rollback_note",
    "rolls_back_seq",
    "request_id",
    "client_ip",
    "key_id",
    "prev_hash",
)


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode()


def key_id_for(key: str) -> str:
    """A public fingerprint naming the key, so verification can pick it after a rotation."""
    return hashlib.sha256(b"portcullis-audit-key-id:" + key.encode()).hexdigest()[:16]


def _keys() -> dict[str, str]:
    keys = [settings.AUDIT_HMAC_KEY, *settings.AUDIT_HMAC_OLD_KEYS]
    return {key_id_for(k): k for k in keys}


def _mac(key: str, payload: Any) -> str:
    return hmac.new(key.encode(), canonical_json(payload), hashlib.sha256).hexdigest()


def entry_content(entry: AuditEntry) -> dict[str, Any]:
    content = {name: getattr(entry, name) for name in HASHED_FIELDS}
    content["created_at"] = entry.created_at.astimezone(UTC).isoformat()
    return content


def _head_payload(head: AuditHead) -> dict[str, Any]:
    return {"count": head.count, "last_hash": head.last_hash, "key_id": head.key_id}


def _locked_head() -> AuditHead:
    """The head row, locked until the surrounding transaction ends.

    On PostgreSQL the row lock queues concurrent appenders; on SQLite the IMMEDIATE transaction
    mode (settings) already holds the database's write lock.
    """
    key = settings.AUDIT_HMAC_KEY
    genesis = AuditHead(count=0, last_hash=GENESIS_HASH, key_id=key_id_for(key))
    with audit_writes():
        AuditHead.objects.get_or_create(
            pk=1,
            defaults={
                "count": 0,
                "last_hash": GENESIS_HASH,
                "key_id": genesis.key_id,
                "head_hmac": _mac(key, _head_payload(genesis)),
            },
        )
    return AuditHead.objects.select_for_update().get(pk=1)


def lock() -> None:
    """Hold the chain's lock until the surrounding transaction ends (serializes all changes)."""
    _locked_head()


def append(**fields: Any) -> AuditEntry:
    """Append one entry. Must run inside the transaction of the change it records."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit.append must run inside the change's transaction")
    head = _locked_head()
    key = settings.AUDIT_HMAC_KEY
    if head.key_id not in _keys():
        # Another process already writes with a newer key: this one must not fork the keys.
        raise ImproperlyConfigured(
            "The audit log's head is signed with a key this process does not know: the audit "
            "key was rotated. Restart this process with the new AUDIT_HMAC_KEY."
        )
    entry = AuditEntry(
        seq=head.count + 1,
        created_at=timezone.now(),
        key_id=key_id_for(key),
        prev_hash=head.last_hash,
        # JSON values go through one round trip so what we hash is what the database returns.
        **{
            k: (json.loads(canonical_json(v)) if k in ("before", "after", "diff") else v)
            for k, v in fields.items()
        },
    )
    entry.entry_hash = _mac(key, entry_content(entry))
    with audit_writes():
        entry.save(force_insert=True)
    stored = AuditEntry.objects.get(pk=entry.pk)
    if not hmac.compare_digest(_mac(key, entry_content(stored)), entry.entry_hash):
        raise RuntimeError("audit entry changed on its way through the database; refusing it")
    head.count, head.last_hash, head.key_id = entry.seq, entry.entry_hash, entry.key_id
    head.head_hmac = _mac(key, _head_payload(head))
    with audit_writes():
        head.save()
    return stored


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    count: int
    head_hash: str
    problem: str = ""


def _check_entry(
    entry: AuditEntry, expected_seq: int, prev_hash: str, keys: dict[str, str], retired: set[str]
) -> str:
    if entry.seq != expected_seq:
        return f"entry #{expected_seq} is missing (found #{entry.seq} in its place)"
    if entry.prev_hash != prev_hash:
        return f"entry #{entry.seq} does not follow entry #{entry.seq - 1} (prev_hash differs)"
    key = keys.get(entry.key_id)
    if key is None:
        return f"entry #{entry.seq} was signed with unknown key {entry.key_id}"
    if entry.key_id in retired:
        return f"entry #{entry.seq} was signed with a retired key after the current key took over"
    if not hmac.compare_digest(_mac(key, entry_content(entry)), entry.entry_hash):
        return f"entry #{entry.seq} was altered (its HMAC does not match its content)"
    return ""


def _check_head(
    head: AuditHead | None, count: int, last_hash: str, last_key_id: str, keys: dict[str, str]
) -> str:
    if head is None:
        return "the chain head is missing (was the log wiped?)"
    if count and head.key_id != last_key_id:
        return "the chain head is not signed with the key of the last entry"
    key = keys.get(head.key_id)
    if key is None or not hmac.compare_digest(_mac(key, _head_payload(head)), head.head_hmac):
        return "the chain head was altered"
    if head.count != count or head.last_hash != last_hash:
        missing = count + 1 if head.count > count else count
        return (
            f"the head records {head.count} entries but the log holds {count} "
            f"(entry #{missing} is missing or extra)"
        )
    return ""


def verify(expect_head: str | None = None) -> VerifyResult:
    """Walk the whole chain in order; report the first entry that breaks it.

    Old keys (AUDIT_HMAC_OLD_KEYS) verify the entries written before a rotation only: once the
    current key has signed an entry, a later entry signed with an old key is a forgery.
    """
    keys = _keys()
    current = key_id_for(settings.AUDIT_HMAC_KEY)
    retired: set[str] = set()
    prev_hash, count, last_key_id = GENESIS_HASH, 0, ""
    for entry in AuditEntry.objects.order_by("seq").iterator(chunk_size=500):
        if problem := _check_entry(entry, count + 1, prev_hash, keys, retired):
            return VerifyResult(False, count, prev_hash, problem)
        if entry.key_id == current:
            retired = set(keys) - {current}
        prev_hash, count, last_key_id = entry.entry_hash, count + 1, entry.key_id
    head = AuditHead.objects.filter(pk=1).first()
    if problem := _check_head(head, count, prev_hash, last_key_id, keys):
        return VerifyResult(False, count, prev_hash, problem)
    if expect_head and not hmac.compare_digest(expect_head, prev_hash):
        return VerifyResult(
            False, count, prev_hash, f"the head hash is {prev_hash}, not the expected {expect_head}"
        )
    return VerifyResult(True, count, prev_hash)
