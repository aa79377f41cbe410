"""Policies and rules as one JSON document, for review in version control.

`export_document()` writes every upload policy and header rule keyed by its natural key (slug,
name) with its editable fields, sorted, so two exports of the same state are byte-identical and a
diff shows exactly what changed. `parse_document()`, `plan()` and `apply()` import one back: the
difference with the database, as `import` audit entries through the services, all or nothing
(objects the document does not hold are deleted, so the result is the document's state).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from policies import services
from policies.models import AuditAction
from policies.services import POLICY, RULE, Actor, Kind, field_diff, snapshot
from project.errors import PolicyConflict

FORMAT_VERSION = 1
SECTIONS: dict[str, Kind] = {"upload_policies": POLICY, "header_rules": RULE}


def export_document() -> dict[str, Any]:
    document: dict[str, Any] = {"format": FORMAT_VERSION}
    for section, kind in SECTIONS.items():
        document[section] = {
            getattr(obj, kind.key_field): _fields(obj, kind)
            for obj in kind.model.objects.order_by(kind.key_field)
        }
    return document


def _fields(obj, kind: Kind) -> dict[str, Any]:
    fields = snapshot(obj)
    fields.pop("version")
    fields.pop(kind.key_field)
    return fields


def export_json() -> str:
    return json.dumps(export_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


class ImportRefused(ValueError):
    """A document that cannot be imported; the message says what is wrong and where."""


@dataclass(frozen=True)
class Change:
    section: str
    key: str
    action: str  # create, update, delete
    fields: dict[str, Any]  # create: all fields; update: {field: {"from", "to"}}; delete: {}

    def describe(self) -> str:
        where = f"{self.section}.{self.key}"
        if self.action == "create":
            return f"+ {where} (new)"
        if self.action == "delete":
            return f"- {where} (removed)"
        lines = [f"~ {where}"]
        lines += [
            f"    {name}: {d['before']!r} -> {d['after']!r}" for name, d in self.fields.items()
        ]
        return "\n".join(lines)


def parse_document(text: str) -> dict[str, Any]:
    """The document, checked for shape (not yet for values: the services check those)."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportRefused(
            f"not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    version = document.get("format") if isinstance(document, dict) else None
    if type(version) is not int or version != FORMAT_VERSION:
        raise ImportRefused(f'not a policies export: expected {{"format": {FORMAT_VERSION}, ...}}')
    unknown = sorted(set(document) - {"format", *SECTIONS})
    if unknown:
        raise ImportRefused(f"unknown section {unknown[0]!r}")
    # A missing section would mean "delete them all": say so explicitly, with an empty object.
    if missing := [section for section in SECTIONS if section not in document]:
        raise ImportRefused(f"missing section {missing[0]!r} (an empty one is {{}})")
    for section, kind in SECTIONS.items():
        objects = document[section]
        if not isinstance(objects, dict):
            raise ImportRefused(f"{section}: expected an object keyed by {kind.key_field}")
        for key, fields in objects.items():
            if not isinstance(fields, dict):
                raise ImportRefused(f"{section}.{key}: expected an object of fields")
            editable = set(_fields(kind.model(), kind))
            if extra := sorted(set(fields) - editable):
                raise ImportRefused(f"{section}.{key}.{extra[0]}: no such field")
    return document


def plan(document: dict[str, Any]) -> list[Change]:
    """What importing `document` changes, against the database now."""
    changes = []
    for section, kind in SECTIONS.items():
        wanted = document.get(section, {})
        current = {getattr(o, kind.key_field): o for o in kind.model.objects.all()}
        for key in sorted(wanted):
            if key not in current:
                changes.append(Change(section, key, "create", wanted[key]))
            elif diff := field_diff(
                _fields(current[key], kind), {**_fields(current[key], kind), **wanted[key]}
            ):
                changes.append(Change(section, key, "update", diff))
        changes += [
            Change(section, key, "delete", {}) for key in sorted(set(current) - set(wanted))
        ]
    return changes


def apply(
    changes: list[Change], *, actor: Actor, reason: str, rollback_note: str, dry_run: bool = False
) -> None:
    """Each change through the services as one `import` audit entry, all or nothing; a refusal
    names the object it concerns. A dry run makes every change and checks it, then undoes them
    all (so it refuses what the real run would)."""
    why = {"actor": actor, "reason": reason, "rollback_note": rollback_note}
    with transaction.atomic():
        for change in changes:
            kind = SECTIONS[change.section]
            try:
                _apply_one(kind, change, why)
            except (ValidationError, PolicyConflict) as refusal:
                raise ImportRefused(f"{change.section}.{change.key}: {_said(refusal)}") from None
        if dry_run:
            transaction.set_rollback(True)


def _apply_one(kind: Kind, change: Change, why: dict[str, Any]) -> None:
    if change.action == "create":
        data = {kind.key_field: change.key, **change.fields}
        _CREATE[kind.object_type](data=data, action=AuditAction.IMPORT, **why)
        return
    obj = kind.model.objects.get(**{kind.key_field: change.key})
    target = {"rule" if kind is RULE else "policy": obj, "version": obj.version}
    if change.action == "update":
        updates = {name: diff["after"] for name, diff in change.fields.items()}
        _UPDATE[kind.object_type](**target, changes=updates, action=AuditAction.IMPORT, **why)
    else:
        _DELETE[kind.object_type](**target, action=AuditAction.IMPORT, **why)


def _said(refusal: Exception) -> str:
    if isinstance(refusal, ValidationError) and hasattr(refusal, "error_dict"):
        return "; ".join(f"{f}: {' '.join(m)}" for f, m in refusal.message_dict.items())
    if isinstance(refusal, ValidationError):
        return " ".join(refusal.messages)
    return str(refusal)


_CREATE = {"upload_policy": services.policy_create, "header_rule": services.rule_create}
_UPDATE = {"upload_policy": services.policy_update, "header_rule": services.rule_update}
_DELETE = {"upload_policy": services.policy_delete, "header_rule": services.rule_delete}
