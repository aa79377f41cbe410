"""The only writers of UploadPolicy and HeaderRule: each change validated, versioned, audited.

Each public function is one transaction that changes one object and appends exactly one audit
entry; a refusal raises (ValidationError or PolicyConflict) and leaves nothing behind.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import ProtectedError
from django.http import HttpRequest

from policies import audit
from policies.headers import bump_stamp
from policies.models import AuditAction, AuditEntry, HeaderRule, Mode, UploadPolicy, service_writes
from project.errors import PolicyConflict
from project.middleware import current_request_id
from project.net import client_ip

# Fields a caller never sets: identity, bookkeeping, and the version the services own.
NOT_EDITABLE = frozenset({"id", "version", "created_at", "updated_at"})


@dataclass(frozen=True)
class Actor:
    """Who makes a change, and from which request, as the audit log records it."""

    label: str
    user: Any = None
    request_id: str = ""
    client_ip: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(label="system", request_id=_request_id())

    @classmethod
    def for_user(cls, user: Any) -> Actor:
        return cls(label=f"user:{user.get_username()}", user=user, request_id=_request_id())

    @classmethod
    def from_request(cls, request: HttpRequest) -> Actor:
        user = request.user
        return cls(
            label=f"user:{user.get_username()}" if user.is_authenticated else "anonymous",
            user=user if user.is_authenticated else None,
            request_id=getattr(request, "request_id", "") or _request_id(),
            client_ip=client_ip(request),
        )


def _request_id() -> str:
    value = current_request_id.get()
    return "" if value == "-" else value


@dataclass(frozen=True)
class Kind:
    """How the services treat one model."""

    model: type[models.Model]
    object_type: str
    key_field: str
    label: str


POLICY = Kind(UploadPolicy, "upload_policy", "slug", "upload policy")
RULE = Kind(HeaderRule, "header_rule", "name", "header rule")
KINDS = {kind.object_type: kind for kind in (POLICY, RULE)}


def snapshot(obj: models.Model) -> dict[str, Any]:
    """The object's editable state plus its version, as JSON-ready values."""
    return {
        field.attname: field.value_from_object(obj)
        for field in obj._meta.concrete_fields
        if field.attname not in NOT_EDITABLE - {"version"}
    }


def field_diff(before: dict | None, after: dict | None) -> dict[str, dict[str, Any]]:
    before, after = before or {}, after or {}
    return {
        name: {"before": before.get(name), "after": after.get(name)}
        for name in sorted(set(before) | set(after))
        if name != "version" and before.get(name) != after.get(name)
    }


def _require_why(reason: str, rollback_note: str | None) -> None:
    errors = {}
    if not (reason or "").strip():
        errors["reason"] = ["Say why you are making this change."]
    if rollback_note is not None and not rollback_note.strip():
        errors["rollback_note"] = ["Say how to undo this change if it goes wrong."]
    if errors:
        raise ValidationError(errors)


def _apply(obj: models.Model, data: dict[str, Any]) -> None:
    fields = {f.name: f for f in obj._meta.concrete_fields}
    unknown = sorted(k for k in data if k not in fields or k in NOT_EDITABLE)
    if unknown:
        raise ValidationError(
            {name: ["This field does not exist or cannot be set."] for name in unknown}
        )
    errors: dict[str, list[str]] = {}
    for name, value in data.items():
        try:
            setattr(obj, fields[name].attname, _typed(fields[name], value))
        except ValidationError as exc:
            errors[name] = exc.messages
    if errors:
        raise ValidationError(errors)


def _typed(field: models.Field, value: Any) -> Any:
    """`value` as the field holds it, or a ValidationError for the field (never a 500 later:
    full_clean skips blank values, and the database refuses NUL in text)."""
    text_field = isinstance(field, models.CharField | models.TextField)
    if text_field and value is not None and not isinstance(value, str):
        raise ValidationError("Give text.")
    if _holds_nul(value):
        raise ValidationError("Text cannot contain NUL characters.")
    return field.to_python(value)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(v) for v in value)
    return False


def _locked(kind: Kind, pk: Any) -> models.Model:
    try:
        return kind.model.objects.select_for_update().get(pk=pk)
    except kind.model.DoesNotExist:
        raise ValidationError(f"That {kind.label} no longer exists.") from None


def _check_version(kind: Kind, obj: models.Model, version: int) -> None:
    if version != obj.version:
        raise PolicyConflict(
            "version_conflict",
            f"This {kind.label} was changed by someone else since you loaded it "
            f"(you had version {version}, it is now version {obj.version}). "
            "Reload it, check their change, and apply yours again.",
            current_version=obj.version,
        )


def _record(
    kind: Kind,
    *,
    action: str,
    pk: Any,
    key: str,
    before: dict | None,
    after: dict | None,
    actor: Actor,
    reason: str,
    rollback_note: str,
    rolls_back: AuditEntry | None = None,
) -> AuditEntry:
    if kind is RULE:
        transaction.on_commit(bump_stamp, robust=True)  # every process reloads within a second
    return audit.append(
        actor=actor.label,
        actor_user=actor.user,
        action=action,
        object_type=kind.object_type,
        object_id=str(pk),
        object_repr=key,
        before=before,
        after=after,
        diff=field_diff(before, after),
        reason=reason.strip(),
        rollback_note=rollback_note.strip(),
        rolls_back_seq=rolls_back.seq if rolls_back else None,
        request_id=actor.request_id,
        client_ip=actor.client_ip,
    )


def _validate(obj: models.Model) -> None:
    """Field validators and clean() already check every rule the constraints hold (and say it
    better); skipping constraint validation saves a query per constraint. The database still
    enforces them."""
    obj.full_clean(validate_constraints=False)


def _save_new(
    kind: Kind, data: dict[str, Any], *, pk: Any = None, version: int = 1
) -> models.Model:
    obj = kind.model(pk=pk)
    _apply(obj, data)
    obj.version = version
    _validate(obj)
    with service_writes():
        obj.save(force_insert=True)
    return obj


def _save_changes(obj: models.Model, data: dict[str, Any]) -> None:
    _apply(obj, data)
    obj.version += 1
    _validate(obj)
    with service_writes():
        obj.save()


def _remove(kind: Kind, obj: models.Model) -> None:
    try:
        with service_writes():
            obj.delete()
    except ProtectedError:
        raise PolicyConflict(
            "policy_in_use",
            f"The {kind.label} {getattr(obj, kind.key_field)} is referenced by stored uploads "
            "and cannot be deleted; disable it instead.",
        ) from None


def _create(kind: Kind, *, data: dict, actor: Actor, reason: str, rollback_note: str, action: str):
    _require_why(reason, rollback_note)
    with transaction.atomic():
        audit.lock()  # always first, so every change takes the same locks in the same order
        obj = _save_new(kind, data)
        _record(
            kind,
            action=action,
            pk=obj.pk,
            key=getattr(obj, kind.key_field),
            before=None,
            after=snapshot(obj),
            actor=actor,
            reason=reason,
            rollback_note=rollback_note,
        )
    return obj


def _update(
    kind: Kind,
    *,
    pk: Any,
    changes: dict,
    version: int,
    actor: Actor,
    reason: str,
    rollback_note: str,
    action: str,
):
    _require_why(reason, rollback_note)
    with transaction.atomic():
        audit.lock()
        obj = _locked(kind, pk)
        _check_version(kind, obj, version)
        before = snapshot(obj)
        _apply(obj, changes)
        if not field_diff(before, snapshot(obj)):
            return obj  # nothing changed: no new version, no audit entry
        _save_changes(obj, {})
        _record(
            kind,
            action=action,
            pk=obj.pk,
            key=getattr(obj, kind.key_field),
            before=before,
            after=snapshot(obj),
            actor=actor,
            reason=reason,
            rollback_note=rollback_note,
        )
    return obj


def _delete(
    kind: Kind,
    *,
    pk: Any,
    version: int,
    actor: Actor,
    reason: str,
    rollback_note: str,
    action: str = AuditAction.DELETE,
):
    _require_why(reason, rollback_note)
    with transaction.atomic():
        audit.lock()
        obj = _locked(kind, pk)
        _check_version(kind, obj, version)
        before, key = snapshot(obj), getattr(obj, kind.key_field)
        _remove(kind, obj)
        _record(
            kind,
            action=action,
            pk=pk,
            key=key,
            before=before,
            after=None,
            actor=actor,
            reason=reason,
            rollback_note=rollback_note,
        )


def policy_create(
    *,
    data: dict[str, Any],
    actor: Actor,
    reason: str,
    rollback_note: str,
    action: str = AuditAction.CREATE,
) -> UploadPolicy:
    return _create(
        POLICY, data=data, actor=actor, reason=reason, rollback_note=rollback_note, action=action
    )


def policy_update(
    *,
    policy: UploadPolicy,
    changes: dict[str, Any],
    version: int,
    actor: Actor,
    reason: str,
    rollback_note: str,
    action: str = AuditAction.UPDATE,
) -> UploadPolicy:
    return _update(
        POLICY,
        pk=policy.pk,
        changes=changes,
        version=version,
        actor=actor,
        reason=reason,
        rollback_note=rollback_note,
        action=action,
    )


def policy_delete(
    *,
    policy: UploadPolicy,
    version: int,
    actor: Actor,
    reason: str,
    rollback_note: str,
    action: str = AuditAction.DELETE,
) -> None:
    _delete(
        POLICY,
        pk=policy.pk,
        version=version,
        actor=actor,
        reason=reason,
        rollback_note=rollback_note,
        action=action,
    )


def rule_create(
    *,
    data: dict[str, Any],
    actor: Actor,
    reason: str,
    rollback_note: str,
    action: str = AuditAction.CREATE,
) -> HeaderRule:
    return _create(
        RULE, data=data, actor=actor, reason=reason, rollback_note=rollback_note, action=action
    )


def rule_update(
    *,
    rule: HeaderRule,
    changes: dict[str, Any],
    version: int,
    actor: Actor,
    reason: str,
    rollback_note: str,
    action: str = AuditAction.UPDATE,
) -> HeaderRule:
    return _update(
        RULE,
        pk=rule.pk,
        changes=changes,
        version=version,
        actor=actor,
        reason=reason,
        rollback_note=rollback_note,
        action=action,
    )


def rule_delete(
    *,
    rule: HeaderRule,
    version: int,
    actor: Actor,
    reason: str,
    rollback_note: str,
    action: str = AuditAction.DELETE,
) -> None:
    _delete(
        RULE,
        pk=rule.pk,
        version=version,
        actor=actor,
        reason=reason,
        rollback_note=rollback_note,
        action=action,
    )


def later_entries(entry: AuditEntry) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(
            object_type=entry.object_type, object_id=entry.object_id, seq__gt=entry.seq
        ).order_by("seq")
    )


def rollback_preview(entry: AuditEntry) -> dict[str, dict[str, Any]]:
    """What rolling back `entry` would change: the object's current state against entry.before."""
    kind = KINDS[entry.object_type]
    current = kind.model.objects.filter(pk=entry.object_id).first()
    return field_diff(snapshot(current) if current else None, entry.before)


def change_rollback(
    *, entry: AuditEntry, actor: Actor, reason: str, rollback_note: str = ""
) -> AuditEntry:
    """Restore the object to `entry.before` as a new `rollback` entry; only its latest change."""
    _require_why(reason, None)
    kind = KINDS[entry.object_type]
    with transaction.atomic():
        audit.lock()  # first, as in every change; no other change lands before the restore
        if later := later_entries(entry):
            raise PolicyConflict(
                "rollback_conflict",
                f"Entry #{entry.seq} is not the latest change to {entry.object_repr}; "
                f"roll back the later change(s) {', '.join(f'#{e.seq}' for e in later)} first.",
                later_entries=[e.seq for e in later],
            )
        current = kind.model.objects.select_for_update().filter(pk=entry.object_id).first()
        before = snapshot(current) if current else None
        restored = {k: v for k, v in (entry.before or {}).items() if k != "version"}
        if entry.before is None:
            if current is not None:
                _remove(kind, current)
            after = None
        elif current is None:
            after = snapshot(
                _save_new(kind, restored, pk=entry.object_id, version=entry.before["version"] + 1)
            )
        else:
            _save_changes(current, restored)
            after = snapshot(current)
        note = rollback_note.strip() or (
            f"Roll back this entry to return to the state entry #{entry.seq} produced."
        )
        return _record(
            kind,
            action=AuditAction.ROLLBACK,
            pk=entry.object_id,
            key=entry.object_repr,
            before=before,
            after=after,
            actor=actor,
            reason=reason,
            rollback_note=note,
            rolls_back=entry,
        )


def headers_reset(*, actor: Actor, reason: str) -> list[AuditEntry]:
    """Put the seeded rules back as seeded and disable every other rule, each change audited."""
    from policies.presets import seeded_rules

    note = "Roll back these entries (newest first) to return to the rules before the reset."
    entries_before = AuditEntry.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    seeded = {rule["name"]: rule for rule in seeded_rules()}
    with transaction.atomic():
        for name, data in seeded.items():
            rule = HeaderRule.objects.filter(name=name).first()
            defaults = {f: HeaderRule._meta.get_field(f).get_default() for f in _rule_fields()}
            wanted = {**defaults, **data, "enabled": True, "mode": "enforce"}
            if rule is None:
                rule_create(data=wanted, actor=actor, reason=reason, rollback_note=note)
            else:
                rule_update(
                    rule=rule,
                    changes=wanted,
                    version=rule.version,
                    actor=actor,
                    reason=reason,
                    rollback_note=note,
                )
        for rule in HeaderRule.objects.filter(enabled=True).exclude(name__in=seeded):
            rule_disable(rule=rule, actor=actor, reason=reason, rollback_note=note)
    return list(AuditEntry.objects.filter(seq__gt=entries_before).order_by("seq"))


def _rule_fields() -> list[str]:
    return [f.name for f in HeaderRule._meta.concrete_fields if f.name not in NOT_EDITABLE]


def rule_disable(*, rule: HeaderRule, actor: Actor, reason: str, rollback_note: str) -> None:
    """Switch a rule off, audited, without validating the rest of it: a rule that today's
    validation would refuse (saved under older rules) must still be switchable off."""
    _require_why(reason, rollback_note)
    with transaction.atomic():
        audit.lock()
        obj = _locked(RULE, rule.pk)
        if not obj.enabled:
            return
        before = snapshot(obj)
        obj.enabled, obj.version = False, obj.version + 1
        with service_writes():
            obj.save(update_fields=["enabled", "version", "updated_at"])
        _record(
            RULE,
            action=AuditAction.UPDATE,
            pk=obj.pk,
            key=obj.name,
            before=before,
            after=snapshot(obj),
            actor=actor,
            reason=reason,
            rollback_note=rollback_note,
        )


def rehearsal_name(name: str, taken: set[str]) -> str:
    """`<name>-rehearsal`, or `-rehearsal-2`, `-3`… when taken; the name cut to fit the field."""
    max_length = HeaderRule._meta.get_field("name").max_length
    suffixes = ("-rehearsal" if n == 1 else f"-rehearsal-{n}" for n in itertools.count(1))
    return next(
        candidate
        for suffix in suffixes
        if (candidate := name[: max_length - len(suffix)] + suffix) not in taken
    )


def rule_rehearsal_create(
    *, rule: HeaderRule, name: str, actor: Actor, reason: str, rollback_note: str
) -> HeaderRule:
    """A report-only, enabled copy of `rule` under `name` (same place, same headers), to edit
    and watch before changing the rule itself: the "report-only rollout" preset."""
    data = {field: copy.deepcopy(getattr(rule, field)) for field in _rule_fields()}
    intro = (
        f"Report-only rehearsal of {rule.name}: edit it, watch the reports, "
        f"then apply the change to {rule.name}."
    )
    data.update(
        name=name,
        mode=Mode.REPORT_ONLY,
        enabled=True,
        description=f"{intro}\n\n{rule.description}".strip(),
    )
    return rule_create(data=data, actor=actor, reason=reason, rollback_note=rollback_note)
