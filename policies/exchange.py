"""Policies and rules as one JSON document, for review in version control.

`export_document()` writes every upload policy and header rule keyed by its natural key (slug,
name) with its editable fields, sorted, so two exports of the same state are byte-identical and a
diff shows exactly what changed. (Importing it back, through the services, is the next step.)
"""

from __future__ import annotations

import json
from typing import Any

from policies.services import POLICY, RULE, Kind, snapshot

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
