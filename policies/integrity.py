"""Does every stored policy and rule match the audit log's record of its latest change?

The hash chain proves the log was not edited; this proves the objects were not edited behind it
(raw SQL, a restored table): each object must equal the `after` snapshot of its latest entry.
"""

from __future__ import annotations

from policies.models import AuditEntry
from policies.services import KINDS, Kind, snapshot


def _latest_entries(kind: Kind) -> dict[str, AuditEntry]:
    latest: dict[str, AuditEntry] = {}
    entries = AuditEntry.objects.filter(object_type=kind.object_type).order_by("seq")
    for entry in entries.only("seq", "object_id", "object_repr", "after").iterator(chunk_size=500):
        latest[entry.object_id] = entry
    return latest


def _recorded_fields_differ(recorded: dict, current: dict) -> list[str]:
    """Fields the entry recorded that differ now; fields added to the model since are skipped."""
    shared = set(recorded) & set(current)
    return sorted(name for name in shared if name != "version" and recorded[name] != current[name])


def _kind_drift(kind: Kind) -> list[str]:
    latest = _latest_entries(kind)
    live = {str(obj.pk): obj for obj in kind.model.objects.all()}
    problems = []
    for object_id, obj in live.items():
        name = f"{kind.label} {getattr(obj, kind.key_field)}"
        entry = latest.get(object_id)
        if entry is None or entry.after is None:
            problems.append(f"{name} exists but the audit log has no record of its creation")
        elif changed := _recorded_fields_differ(entry.after, snapshot(obj)):
            problems.append(
                f"{name} differs from audit entry #{entry.seq} in {', '.join(changed)} "
                "(changed without an audit entry)"
            )
    for object_id, entry in latest.items():
        if entry.after is not None and object_id not in live:
            problems.append(
                f"{kind.label} {entry.object_repr} is gone, but audit entry #{entry.seq} "
                "says it exists (removed without an audit entry)"
            )
    return problems


def state_drift() -> list[str]:
    """Every disagreement between the stored objects and the audit log, in words."""
    return [problem for kind in KINDS.values() for problem in _kind_drift(kind)]
