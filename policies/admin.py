"""The admin for upload policies, header rules and their audit log.

Every write goes through `policies.services` with a reason and a rollback note, so the admin can
never skip the audit log: the stock save, delete and bulk-delete paths are replaced, history shows
the audit trail, and the latest change of an object can be rolled back from there.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import csrf_protect_m
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import ERROR_FLAG, ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.timesince import timesince

from policies import headers, selectors, services
from policies.admin_help import POLICY_HELP, RULE_HELP, WHY_HELP
from policies.forms import (
    BYTE_FIELDS,
    AuditedModelForm,
    BulkDeleteForm,
    DeleteForm,
    HeaderPreviewForm,
    PolicyForm,
    RehearsalCopyForm,
    RollbackForm,
    RuleForm,
    readable_messages,
)
from policies.models import AuditEntry, CspReport, HeaderRule, Mode, UploadPolicy
from policies.presets import PRESETS
from policies.services import KINDS, Actor, Kind
from policies.units import format_bytes
from project.errors import PolicyConflict
from uploads.selectors import WATCH_MAX_WINDOW, Outcomes, rehearsal_report, release_watch

# The request attribute that carries a service's refusal into the form shown again (see below).
REFUSAL_ATTR = "_policies_service_refusal"
HISTORY_LIMIT = 100
# History rows that show what their change did (older ones: on their audit entry's page).
HISTORY_WATCHED = 10

WHY_FIELDSET = (
    "Why: reason and rollback note (required for every save)",
    {
        "classes": ("policies-why",),
        "description": "Kept in the audit log with your name and the change; a save without "
        "both is refused. The rollback note tells whoever undoes this change how.",
        "fields": ("reason", "rollback_note", "based_on_version"),
    },
)


def section(title: str, description: str, *fields: str | tuple[str, ...]) -> tuple:
    """A fieldset of the change form: a titled group of fields with a line saying what it is."""
    options: dict[str, Any] = {"fields": fields}
    if description:
        options["description"] = description
    return (title, options)


# --- Showing values and diffs -------------------------------------------------------------------


# How a missing value (no field before a create, none after a delete, an empty one) reads.
NOTHING = "—"


@dataclass(frozen=True)
class DiffRow:
    field: str
    label: str
    before: str
    after: str

    @property
    def had_value(self) -> bool:
        return self.before != NOTHING

    @property
    def has_value(self) -> bool:
        return self.after != NOTHING


def describe(name: str, value: Any) -> str:
    """A stored value as an admin reads it: sizes humanized, lists joined, booleans in words."""
    if value is None or value == "":
        return NOTHING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name in BYTE_FIELDS and isinstance(value, int):
        return f"{format_bytes(value)} ({value} bytes)"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(none)"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False) if value else "(none)"
    return str(value)


def diff_rows(kind: Kind, diff: dict[str, dict[str, Any]]) -> list[DiffRow]:
    """A field diff ({field: {before, after}}) as readable rows, labelled like the form."""
    fields = {f.name: f for f in kind.model._meta.concrete_fields}
    rows = []
    for name, change in diff.items():
        field = fields.get(name)  # a field removed since still shows, under its own name
        before, after = (_choice_label(field, change[side]) for side in ("before", "after"))
        label = str(field.verbose_name) if field is not None else name
        rows.append(DiffRow(name, label, describe(name, before), describe(name, after)))
    return rows


def _choice_label(field: Any, value: Any) -> Any:
    if field is None or not field.choices or not isinstance(value, str):
        return value
    return dict(field.flatchoices).get(value, value)


def render_diff(kind: Kind, diff: dict[str, dict[str, Any]]) -> SafeString:
    return render_to_string(
        "admin/policies/includes/diff_table.html", {"rows": diff_rows(kind, diff)}
    )


def mode_badge(obj: UploadPolicy | HeaderRule) -> str:
    if obj.mode == Mode.REPORT_ONLY:
        return format_html(
            '<span class="policies-rehearsal" title="{}">report-only</span>',
            "A rehearsal: records what it would do, enforces nothing.",
        )
    return obj.get_mode_display()


def size_text(value: Any) -> str:
    """A number of bytes as "10 MiB (10485760 bytes)"; empty for anything else."""
    try:
        size = int(value)
    except (TypeError, ValueError):
        return ""
    return f"{format_bytes(size)} ({size} bytes)" if size >= 0 else ""


class ByteSizeInput(forms.NumberInput):
    """A size in bytes, with the size as people read it beside the box (policies/admin.js keeps
    it up to date while the admin types)."""

    def render(self, name: str, value: Any, attrs: dict | None = None, renderer=None) -> str:
        box = super().render(name, value, attrs, renderer)
        element_id = (attrs or {}).get("id", "")
        return format_html(
            '{} <output class="policies-size" for="{}" aria-live="polite">{}</output>',
            box,
            element_id,
            size_text(value),
        )


# --- Rolling back -------------------------------------------------------------------------------


def history_url(site: admin.AdminSite, entry: AuditEntry) -> str:
    opts = KINDS[entry.object_type].model._meta
    return reverse(
        f"{site.name}:{opts.app_label}_{opts.model_name}_history",
        args=[quote(entry.object_id)],
    )


def may_roll_back(site: admin.AdminSite, request: HttpRequest, entry: AuditEntry) -> bool:
    """Change permission, plus add when the rollback re-creates, delete when it deletes."""
    return selectors.may_roll_back(request.user, entry)


def rollback_effect(entry: AuditEntry) -> str:
    kind = KINDS[entry.object_type]
    exists = kind.model.objects.filter(pk=entry.object_id).exists()
    what = f"{kind.label} {entry.object_repr}"
    if entry.before is None:
        return f"This deletes the {what}, which entry #{entry.seq} created."
    if not exists:
        return f"This re-creates the {what} as it was before entry #{entry.seq}."
    return f"This restores the {what} to how it was before entry #{entry.seq}."


class RollbackMixin:
    """The rollback confirmation page, shared by the objects' history and the audit log."""

    admin_site: admin.AdminSite

    def rollback_page(self, request: HttpRequest, entry: AuditEntry) -> HttpResponse:
        if not may_roll_back(self.admin_site, request, entry):
            raise PermissionDenied
        form = RollbackForm(request.POST if request.method == "POST" else None)
        if form.is_bound and form.is_valid():
            response = self._roll_back(request, entry, form)
            if response is not None:
                return response
        kind = KINDS[entry.object_type]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Roll back entry #{entry.seq}",
            "subtitle": None,
            "opts": kind.model._meta,
            "entry": entry,
            "effect": rollback_effect(entry),
            "preview": diff_rows(kind, services.rollback_preview(entry)),
            "later": services.later_entries(entry),
            "form": form,
            "history_url": history_url(self.admin_site, entry),
            "watch": self._release_watch(request, entry),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/policies/rollback_confirmation.html", context)

    def _release_watch(self, request: HttpRequest, entry: AuditEntry) -> str:
        """What the change did to uploads, to weigh before undoing it (policies only)."""
        if entry.object_type != services.POLICY.object_type:
            return ""
        return render_release_watch(entry, events_url=events_url_for(self.admin_site, request))

    def _roll_back(
        self, request: HttpRequest, entry: AuditEntry, form: RollbackForm
    ) -> HttpResponse | None:
        """Call the service; None (with the refusal on the form) when it refused."""
        try:
            new = services.change_rollback(
                entry=entry, actor=Actor.from_request(request), **form.why()
            )
        except PolicyConflict as conflict:
            messages.error(request, conflict.detail)
            return HttpResponseRedirect(history_url(self.admin_site, entry))
        except ValidationError as error:
            form.add_error(
                None,
                [f"The restored state is not valid now: {m}" for m in readable_messages(error)],
            )
            return None
        messages.success(
            request,
            f"Rolled back entry #{entry.seq} of {entry.object_repr}; "
            f"the rollback is entry #{new.seq}.",
        )
        return HttpResponseRedirect(history_url(self.admin_site, entry))


# --- Watching what a policy change did ----------------------------------------------------------


@dataclass(frozen=True)
class WatchSide:
    """One side of a change, each number linked to its events (when the admin may see them)."""

    outcomes: Outcomes
    accepted_url: str
    refused_url: str
    would_refuse_url: str
    codes: list[tuple[str, int, str]]  # (refusal code, uploads, link)


def watch_side(outcomes: Outcomes, events_url: str) -> WatchSide:
    def link(**params: str) -> str:
        if not events_url:
            return ""
        window = {
            "policy_slug__in": ",".join(outcomes.policy_slugs),
            "created_at__gte": outcomes.start.isoformat(),
            "created_at__lt": outcomes.end.isoformat(),
        }
        return f"{events_url}?{urlencode({**params, **window})}"

    return WatchSide(
        outcomes=outcomes,
        accepted_url=link(outcome="accepted"),
        refused_url=link(outcome="refused"),
        would_refuse_url=link(outcome="would_refuse"),
        codes=[(code, n, link(code=code)) for code, n in outcomes.top_codes],
    )


def render_release_watch(entry: AuditEntry, *, events_url: str | None) -> SafeString:
    """Accepted and refused uploads under the policy, as long before the change as after it;
    only to those who may read upload events (`events_url` None: a note saying so)."""
    if events_url is None:
        return render_to_string("admin/policies/includes/release_watch_hidden.html")
    before_state, after_state = entry.before or entry.after, entry.after or entry.before
    later = list(
        selectors.audit_entries_for(object_type=entry.object_type, object_id=entry.object_id)
        .filter(seq__gt=entry.seq, created_at__lt=entry.created_at + WATCH_MAX_WINDOW)
        .order_by("seq")
    )
    watch = release_watch(
        changed_at=entry.created_at,
        before_slug=before_state["slug"],
        after_slug=after_state["slug"],
        later_slugs=[e.after["slug"] for e in later if e.after],
    )
    again = next((e for e in later if e.created_at < entry.created_at + watch.window), None)
    context = {
        "watch": watch,
        "window": timesince(entry.created_at - watch.window, entry.created_at),
        "just_made": watch.window < timedelta(minutes=1),
        "sides": [
            ("Before", watch_side(watch.before, events_url)),
            ("After", watch_side(watch.after, events_url)),
        ],
        "changed_again": again,
        "trend": refusal_trend(watch.before, watch.after),
        "expected_result": after_state.get("expected_result", ""),
    }
    return render_to_string("admin/policies/includes/release_watch.html", context)


def refusal_trend(before: Outcomes, after: Outcomes) -> str:
    """Whether a larger share of uploads is refused after the change ("worse"), a smaller one
    ("better"), or neither ("", also when either side saw no upload)."""
    if before.refused_percent is None or after.refused_percent is None:
        return ""
    if after.refused_percent == before.refused_percent:
        return ""
    return "worse" if after.refused_percent > before.refused_percent else "better"


def events_url_for(site: admin.AdminSite, request: HttpRequest) -> str | None:
    """The upload event list, for those who may read it; None for the others, who see neither
    the list nor what a change did to uploads (the numbers are event data too)."""
    if not request.user.has_perm("uploads.view_uploadevent"):
        return None
    return reverse(f"{site.name}:uploads_uploadevent_changelist")


# --- Policies and rules -------------------------------------------------------------------------


class AuditedAdmin(RollbackMixin, admin.ModelAdmin):
    """A ModelAdmin whose every write is a service call with a reason and a rollback note."""

    kind: ClassVar[Kind]
    field_help: ClassVar[dict[str, str]] = {}
    # JSON fields that hold more than a line or two get a taller box.
    tall_fields: ClassVar[frozenset[str]] = frozenset()
    actions = ["delete_with_reason"]
    readonly_fields = ("version", "updated_at")
    object_history_template = "admin/policies/audited_history.html"
    delete_confirmation_template = "admin/policies/audited_delete_confirmation.html"
    bulk_delete_template = "admin/policies/audited_delete_selected.html"

    class Media:
        css = {"all": ("policies/admin.css",)}
        js = ("policies/admin.js",)

    def formfield_for_dbfield(
        self, db_field: models.Field, request: HttpRequest, **kwargs: Any
    ) -> forms.Field | None:
        """Each field with its help and an example; sizes in bytes shown as people read them."""
        if db_field.name in self.field_help:
            kwargs["help_text"] = self.field_help[db_field.name]
        if db_field.name in BYTE_FIELDS:
            kwargs["widget"] = ByteSizeInput
        if db_field.name in self.tall_fields:
            kwargs["widget"] = forms.Textarea(attrs={"rows": 12, "cols": 80})
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    # The writes each model's services offer.
    def service_create(self, *, data: dict[str, Any], actor: Actor, **why: str) -> Any:
        raise NotImplementedError

    def service_update(
        self, obj: Any, *, changes: dict[str, Any], version: int, actor: Actor, **why: str
    ) -> Any:
        raise NotImplementedError

    def service_delete(self, obj: Any, *, version: int, actor: Actor, **why: str) -> None:
        raise NotImplementedError

    # Saving: the form validates, the service writes, and decides whether the form is stale.

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[AuditedModelForm]:
        form = super().get_form(request, obj, change, **kwargs)
        # modelform_factory made this class for this request, so the attribute stays here.
        form.service_error = getattr(request, REFUSAL_ATTR, None)
        for name, text in WHY_HELP.items():
            # A copy: the declared field is shared with every other form class.
            form.base_fields[name] = copy.copy(form.base_fields[name])
            form.base_fields[name].help_text = text
        return form

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The stock view; when the service refuses the save, the view again showing why.

        The refusal leaves save_model and rolls the first run's transaction back; the second run
        validates the same POST with the refusal on the form, so nothing is saved and the admin
        sees the service's own message (or, for an object deleted meanwhile, the stock "doesn't
        exist" redirect).
        """
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (ValidationError, PolicyConflict) as refusal:
            setattr(request, REFUSAL_ATTR, refusal)
            return super().changeform_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        actor, data = Actor.from_request(request), form.model_data()
        if change:
            version = form.cleaned_data["based_on_version"]
            saved = self.service_update(
                obj, changes=data, version=version, actor=actor, **form.why()
            )
            if saved.version == version:
                self.message_user(request, "Nothing changed, so nothing was recorded.")
        else:
            saved = self.service_create(data=data, actor=actor, **form.why())
        obj.pk, obj.version = saved.pk, saved.version

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        raise PermissionDenied("Delete through the delete page, which asks for a reason.")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        raise PermissionDenied("Delete through the bulk action that asks for a reason.")

    # Deleting one object: a confirmation page asking why.

    @csrf_protect_m
    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        if not self.has_delete_permission(request, obj):
            raise PermissionDenied
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if request.method == "POST":
            form = DeleteForm(request.POST)
            if form.is_valid():
                return self._delete_confirmed(request, obj, form)
        else:
            form = DeleteForm(initial={"based_on_version": obj.version})
        context = {
            **self.admin_site.each_context(request),
            "title": f"Delete {self.opts.verbose_name} {obj}",
            "subtitle": None,
            "object_name": str(self.opts.verbose_name),
            "object": obj,
            "opts": self.opts,
            "form": form,
            "media": self.media,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.delete_confirmation_template, context)

    def _delete_confirmed(self, request: HttpRequest, obj: Any, form: DeleteForm) -> HttpResponse:
        version, actor = form.cleaned_data["based_on_version"], Actor.from_request(request)
        try:
            self.service_delete(obj, version=version, actor=actor, **form.why())
        except PolicyConflict as conflict:
            self.message_user(request, f"Nothing deleted. {conflict.detail}", messages.ERROR)
            return HttpResponseRedirect(self._url("change", obj.pk))
        except ValidationError as error:
            refusal = " ".join(readable_messages(error))
            self.message_user(request, f"Nothing deleted. {refusal}", messages.ERROR)
            return HttpResponseRedirect(self._url("changelist"))
        self.log_deletions(request, [obj])
        return self.response_delete(request, str(obj), obj.pk)

    # Deleting several: the stock action is gone; this one asks why first.

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(
        permissions=["delete"],
        description="Delete selected %(verbose_name_plural)s (with a reason)",
    )
    def delete_with_reason(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """First list what goes and ask why; once confirmed, delete each through the service.

        The page posts back the version it showed of each object, and each delete is made at
        that version, so an object changed after the page was shown is kept.
        """
        form = BulkDeleteForm(request.POST if "confirm" in request.POST else None)
        if form.is_bound and form.is_valid():
            self._delete_each(request, list(queryset), form)
            return None
        rows = [
            {
                "obj": obj,
                "version_name": form.version_name(obj),
                # Shown again after a refused reason, the page keeps the versions it first showed.
                "version": form.posted_version(obj) or obj.version,
            }
            for obj in queryset
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Delete {self.opts.verbose_name_plural}",
            "subtitle": None,
            "objects_name": str(self.opts.verbose_name_plural),
            "rows": rows,
            "opts": self.opts,
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "action_name": "delete_with_reason",
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.bulk_delete_template, context)

    def _delete_each(self, request: HttpRequest, objects: list[Any], form: BulkDeleteForm) -> None:
        """One service call (one transaction, one audit entry) per object, at the version shown."""
        actor, deleted = Actor.from_request(request), []
        for obj in objects:
            version = form.posted_version(obj)
            if version is None:
                self.message_user(
                    request,
                    f"{obj} not deleted: the confirmation page did not say which version you saw; "
                    "select it again and confirm.",
                    messages.ERROR,
                )
                continue
            try:
                self.service_delete(obj, version=version, actor=actor, **form.why())
            except PolicyConflict as conflict:
                self.message_user(request, f"{obj} not deleted: {conflict.detail}", messages.ERROR)
                continue
            except ValidationError as error:
                refusal = " ".join(readable_messages(error))
                self.message_user(request, f"{obj} not deleted: {refusal}", messages.ERROR)
                continue
            self.log_deletions(request, [obj])
            deleted.append(str(obj))
        if deleted:
            names = ", ".join(deleted)
            label = self.opts.verbose_name if len(deleted) == 1 else self.opts.verbose_name_plural
            self.message_user(request, f"Deleted {len(deleted)} {label}: {names}.", "success")

    # History and rollback.

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/history/<int:seq>/rollback/",
                self.admin_site.admin_view(self.rollback_view),
                name="{}_{}_rollback".format(*info),
            ),
            *super().get_urls(),
        ]

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The object's audit trail, newest first; also for a deleted object, to roll it back."""
        object_id = unquote(object_id)
        obj = self.get_object(request, object_id)
        trail = selectors.audit_entries_for(
            object_type=self.kind.object_type, object_id=str(obj.pk) if obj else object_id
        )
        entries = list(trail[:HISTORY_LIMIT])
        if obj is None and not entries:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": f"History of {self.opts.verbose_name} {obj or entries[0].object_repr}",
            "subtitle": None,
            "object": obj,
            "opts": self.opts,
            "module_name": str(self.opts.verbose_name_plural).capitalize(),
            "rows": self._history_rows(request, entries),
            "total": trail.count(),
            "media": self.media,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.object_history_template, context)

    def _history_rows(self, request: HttpRequest, entries: list[AuditEntry]) -> list[dict]:
        watching = self.kind is services.POLICY
        events_url = events_url_for(self.admin_site, request)
        rows = []
        for index, entry in enumerate(entries):
            can = index == 0 and may_roll_back(self.admin_site, request, entry)
            url = self._url("rollback", entry.object_id, entry.seq) if can else ""
            watched = watching and index < HISTORY_WATCHED
            watch = render_release_watch(entry, events_url=events_url) if watched else ""
            rows.append(
                {
                    "entry": entry,
                    "diff": diff_rows(self.kind, entry.diff),
                    "rollback_url": url,
                    "watch": watch,
                }
            )
        return rows

    def rollback_view(self, request: HttpRequest, object_id: str, seq: int) -> HttpResponse:
        entry = selectors.audit_entry_for(
            object_type=self.kind.object_type, object_id=unquote(object_id), seq=seq
        )
        if entry is None:
            raise Http404("No such change of this object.")
        return self.rollback_page(request, entry)

    def _url(self, view: str, *args: Any) -> str:
        name = f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{view}"
        return reverse(name, args=[quote(args[0]), *args[1:]] if args else None)


@admin.register(UploadPolicy)
class UploadPolicyAdmin(AuditedAdmin):
    kind = services.POLICY
    form = PolicyForm
    field_help = POLICY_HELP
    # The mode comes early, so the report-only mark shows even when the list is cut off.
    list_display = (
        "slug",
        "mode_column",
        "enabled",
        "title",
        "max_file_size",
        "max_files_per_request",
        "scan_column",
        "owner",
        "version",
        "updated_at",
    )
    list_filter = ("enabled", "mode", "scan", "upload_access")
    search_fields = ("slug", "title", "owner", "notes")
    fieldsets = (
        section(
            "Ownership",
            "Which upload target this is, who answers for it and what it should do.",
            ("slug", "title"),
            "owner",
            "expected_result",
            "notes",
        ),
        section(
            "Status",
            "Whether it applies, and whether it enforces or only rehearses.",
            ("enabled", "mode"),
            ("version", "updated_at"),
        ),
        section(
            "Limits",
            "Sizes are in bytes; the size as people read it is shown beside each box.",
            "max_file_size_bytes",
            "max_files_per_request",
            "max_request_bytes",
        ),
        section(
            "Types",
            "A file passes when both its sniffed type and its extension are listed.",
            "allowed_types",
            "allowed_extensions",
        ),
        section("File names", "", "filename_max_bytes", "filename_allow_non_ascii"),
        section(
            "Images",
            "Checked from the image's header before it is decoded.",
            "image_max_pixels",
            "image_max_side",
            "image_reencode",
        ),
        section(
            "Documents (PDF)",
            "Active content refused in PDFs.",
            "pdf_refuse_javascript",
            "pdf_refuse_launch_actions",
            "pdf_refuse_embedded_files",
            "pdf_refuse_xfa",
        ),
        section(
            "Archives",
            "ZIP, TAR, gzip and Office files, read without extracting anything.",
            "archive_max_entries",
            "archive_max_expanded_bytes",
            "archive_max_ratio",
            "archive_max_depth",
        ),
        section("Scanning", "", "scan"),
        section("Who may upload", "", "upload_access", "allowed_groups"),
        section(
            "Quota",
            "Per user, over a rolling period.",
            "quota_files",
            "quota_bytes",
            "quota_period_seconds",
        ),
        section("Retention and serving", "", "retention_days", "serve_images_inline"),
        WHY_FIELDSET,
    )
    readonly_fields = (*AuditedAdmin.readonly_fields, "rehearsal")

    def get_fieldsets(self, request: HttpRequest, obj: UploadPolicy | None = None) -> Any:
        if obj is None:
            return self.fieldsets
        # This request's copy of the policy carries what the panel may show: who uploaded what
        # is for those who may view upload events; the counts are for every policy editor.
        obj.may_view_events = request.user.has_perm("uploads.view_uploadevent")
        rehearsal = ("Rehearsal: would-be refusals", {"fields": ("rehearsal",)})
        return (*self.fieldsets[:2], rehearsal, *self.fieldsets[2:])

    @admin.display(description="last 7 days")
    def rehearsal(self, obj: UploadPolicy) -> str:
        """What the policy recorded instead of refusing (report-only mode), with links to the
        events."""
        return render_to_string(
            "admin/policies/includes/rehearsal_report.html",
            {
                "report": rehearsal_report(obj.slug),
                "report_only": obj.mode == Mode.REPORT_ONLY,
                "since": timezone.now() - timedelta(days=7),
                "slug": obj.slug,
                "events_url": reverse("admin:uploads_uploadevent_changelist")
                if getattr(obj, "may_view_events", False)
                else "",
            },
        )

    @admin.display(description="mode", ordering="mode")
    def mode_column(self, obj: UploadPolicy) -> str:
        return mode_badge(obj)

    @admin.display(description="max file size", ordering="max_file_size_bytes")
    def max_file_size(self, obj: UploadPolicy) -> str:
        return obj.max_file_size_display

    @admin.display(description="scan", ordering="scan")
    def scan_column(self, obj: UploadPolicy) -> str:
        return format_html('<span title="{}">{}</span>', obj.get_scan_display(), obj.scan)

    def service_create(self, *, data: dict[str, Any], actor: Actor, **why: str) -> UploadPolicy:
        return services.policy_create(data=data, actor=actor, **why)

    def service_update(
        self, obj: UploadPolicy, *, changes: dict[str, Any], version: int, actor: Actor, **why: str
    ) -> UploadPolicy:
        return services.policy_update(
            policy=obj, changes=changes, version=version, actor=actor, **why
        )

    def service_delete(self, obj: UploadPolicy, *, version: int, actor: Actor, **why: str) -> None:
        services.policy_delete(policy=obj, version=version, actor=actor, **why)


# The floor's rows in `headers.preview`: set by Django's settings, not by a rule named "settings".
SETTINGS_FLOOR_NOTE = "no rule sets it"


@dataclass(frozen=True)
class PreviewLine:
    """A row of the header preview, with a link to the rule that set it."""

    row: headers.PreviewRow
    rule_url: str = ""
    rehearsal: bool = False


def preview_lines(site: admin.AdminSite, **arguments: Any) -> list[PreviewLine]:
    """`headers.preview(**arguments)`, each row linked to its rule and marked when it rehearses."""
    rows = headers.preview(**arguments)
    rules = {r.name: r for r in HeaderRule.objects.filter(name__in={row.source for row in rows})}
    lines = []
    for row in rows:
        from_settings = row.source == "settings" and row.note == SETTINGS_FLOOR_NOTE
        rule = None if from_settings else rules.get(row.source)
        if rule is None:
            lines.append(PreviewLine(row))
            continue
        url = reverse(f"{site.name}:policies_headerrule_change", args=[quote(rule.pk)])
        lines.append(PreviewLine(row, url, rehearsal=rule.mode == Mode.REPORT_ONLY))
    return lines


class RuleChangeList(ChangeList):
    """The rule list, which leaves the header preview's query parameters out of its lookups.

    They stay in the list's own links (filters, sorting, search), so the preview survives them.
    """

    def get_filters_params(self, params: dict | None = None) -> dict:
        lookups = super().get_filters_params(params)
        for name in HeaderPreviewForm.PARAMS:
            lookups.pop(name, None)
        return lookups


@admin.register(HeaderRule)
class HeaderRuleAdmin(AuditedAdmin):
    kind = services.RULE
    form = RuleForm
    field_help = RULE_HELP
    tall_fields = frozenset({"csp", "permissions_policy"})
    actions = [*AuditedAdmin.actions, "copy_as_rehearsal"]
    change_list_template = "admin/policies/headerrule/change_list.html"
    rehearsal_template = "admin/policies/headerrule/copy_as_rehearsal.html"
    list_display = (
        "name",
        "mode_column",
        "enabled",
        "match_type",
        "path",
        "host",
        "priority",
        "version",
    )
    list_filter = ("enabled", "mode", "match_type")
    search_fields = ("name", "path", "host", "description", "owner", "notes")
    fieldsets = (
        section(
            "Rule",
            "Its name, and whether it applies and enforces or only rehearses.",
            "name",
            "description",
            ("enabled", "mode"),
            "version",
        ),
        section(
            "Where",
            "Which requests it applies to. Check with the preview on the rule list.",
            "match_type",
            "path",
            "host",
            "priority",
        ),
        section("Content Security Policy", "", "csp"),
        section(
            "Transport and framing",
            "",
            "hsts_max_age",
            ("hsts_include_subdomains", "hsts_preload"),
            "x_frame_options",
            "cross_origin_opener_policy",
            "cross_origin_embedder_policy",
            "cross_origin_resource_policy",
        ),
        section(
            "Other headers",
            "",
            "referrer_policy",
            "permissions_policy",
            "x_content_type_options_nosniff",
            "cache_control",
            "x_permitted_cross_domain_policies",
            "reporting_endpoints",
        ),
        section(
            "Custom and removed headers",
            "Headers no field above sets, and headers to take off responses.",
            "custom_headers",
            "remove_headers",
        ),
        section("Ownership", "", "owner", "expected_result", "notes"),
        WHY_FIELDSET,
    )

    @admin.display(description="mode", ordering="mode")
    def mode_column(self, obj: HeaderRule) -> str:
        return mode_badge(obj)

    def service_create(self, *, data: dict[str, Any], actor: Actor, **why: str) -> HeaderRule:
        return services.rule_create(data=data, actor=actor, **why)

    # The list: a preview of what a request gets, and adding from a preset.

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return RuleChangeList

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        form = HeaderPreviewForm.from_query(request.GET)
        lines = None
        if form.is_bound and form.is_valid():
            lines = preview_lines(self.admin_site, **form.preview_arguments())
        # The list's own parameters, carried by the preview form so a preview keeps the filters.
        kept = [
            (name, value)
            for name, values in request.GET.lists()
            if name not in HeaderPreviewForm.PARAMS and name != ERROR_FLAG
            for value in values
        ]
        context = {
            "preview_form": form,
            "preview_lines": lines,
            "preview_kept": kept,
            "preview_clear_url": f"?{urlencode(kept)}",
            "preset_links": self._preset_links(request),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def _preset_links(self, request: HttpRequest) -> list[dict[str, str]]:
        if not self.has_add_permission(request):
            return []
        add_url = self._url("add")
        return [
            {"key": key, "label": label, "url": f"{add_url}?{urlencode({'preset': key})}"}
            for key, (label, _values) in PRESETS.items()
        ]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """With `?preset=<name>`, the preset's values (a copy), under any field the URL sets."""
        initial = super().get_changeform_initial_data(request)
        key = initial.pop("preset", None)
        if key is None:
            return initial
        if key not in PRESETS:
            self.message_user(
                request,
                f"There is no preset named “{key}”, so the form starts empty. "
                f"Presets: {', '.join(PRESETS)}.",
                messages.WARNING,
            )
            return initial
        label, values = PRESETS[key]
        self.message_user(
            request,
            f"Pre-filled from the preset “{label}”. Choose the name, path and priority, "
            "check the headers, and say why.",
            messages.INFO,
        )
        return {**copy.deepcopy(values), **initial}

    # Rehearsing a change: a report-only copy to edit and watch before changing the rule.

    @admin.action(permissions=["add"], description="Copy as a report-only rehearsal")
    def copy_as_rehearsal(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """First name the copies and ask why; once confirmed, create each through the service."""
        form = RehearsalCopyForm(request.POST if "confirm" in request.POST else None)
        rules = list(queryset)
        if form.is_bound and form.is_valid():
            self._copy_each(request, rules, form)
            return None
        taken = set(HeaderRule.objects.values_list("name", flat=True))
        rows = []
        for rule in rules:
            name = services.rehearsal_name(rule.name, taken)
            taken.add(name)
            rows.append({"rule": rule, "copy_name": name})
        context = {
            **self.admin_site.each_context(request),
            "title": "Copy header rules as report-only rehearsals",
            "subtitle": None,
            "rows": rows,
            "opts": self.opts,
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "action_name": "copy_as_rehearsal",
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.rehearsal_template, context)

    def _copy_each(
        self, request: HttpRequest, rules: list[HeaderRule], form: RehearsalCopyForm
    ) -> None:
        """One service call (one transaction, one audit entry) per copy."""
        actor, made = Actor.from_request(request), []
        taken = set(HeaderRule.objects.values_list("name", flat=True))
        for rule in rules:
            name = services.rehearsal_name(rule.name, taken)
            try:
                rehearsal = services.rule_rehearsal_create(
                    rule=rule, name=name, actor=actor, **form.why()
                )
            except ValidationError as error:
                refusal = " ".join(readable_messages(error))
                self.message_user(request, f"{rule} not copied: {refusal}", messages.ERROR)
                continue
            taken.add(name)
            self.log_addition(request, rehearsal, [{"added": {}}])
            made.append(f"{name} (of {rule.name}, version {rule.version})")
        if made:
            self.message_user(
                request,
                f"Created {len(made)} report-only rehearsal{'s' if len(made) > 1 else ''}: "
                f"{', '.join(made)}. Edit the copy, watch the reports, then apply the change "
                "to the rule.",
                messages.SUCCESS,
            )

    def service_update(
        self, obj: HeaderRule, *, changes: dict[str, Any], version: int, actor: Actor, **why: str
    ) -> HeaderRule:
        return services.rule_update(rule=obj, changes=changes, version=version, actor=actor, **why)

    def service_delete(self, obj: HeaderRule, *, version: int, actor: Actor, **why: str) -> None:
        services.rule_delete(rule=obj, version=version, actor=actor, **why)


# --- The audit log ------------------------------------------------------------------------------


@admin.register(AuditEntry)
class AuditEntryAdmin(RollbackMixin, admin.ModelAdmin):
    """Read-only: entries are appended by the services, never added, changed or removed here."""

    actions = None
    actions_on_top = actions_on_bottom = False  # no actions, so no empty action bar
    list_display = (
        "seq",
        "created_at",
        "actor",
        "action",
        "object_type",
        "object_repr",
        "short_reason",
    )
    list_display_links = ("seq",)
    list_filter = ("action", "object_type")
    search_fields = ("object_repr", "actor", "reason")
    date_hierarchy = "created_at"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("seq", "created_at"),
                    ("actor", "action"),
                    ("object_type", "object_id", "object_repr"),
                )
            },
        ),
        ("Why", {"fields": ("reason", "rollback_note", "rolls_back_seq")}),
        ("Change", {"fields": ("diff_table",)}),
        (
            "Snapshots before and after",
            {"classes": ("collapse",), "fields": ("before_json", "after_json")},
        ),
        ("Request", {"fields": ("actor_user", "request_id", "client_ip")}),
        ("Chain", {"classes": ("collapse",), "fields": ("key_id", "prev_hash", "entry_hash")}),
    )
    # After the change, for upload policies: what uploads did before and after it.
    WATCH_FIELDSET = (
        "Watch after release",
        {
            "description": "Accepted and refused uploads under this policy for the same length "
            "of time before and after the change.",
            "fields": ("release_watch_panel",),
        },
    )
    readonly_fields = (
        *(
            name
            for _, options in fieldsets
            for line in options["fields"]
            for name in (line if isinstance(line, tuple) else (line,))
        ),
        "release_watch_panel",
    )

    class Media:
        css = {"all": ("policies/admin.css",)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def get_fieldsets(self, request: HttpRequest, obj: AuditEntry | None = None) -> Any:
        if obj is None or obj.object_type != services.POLICY.object_type:
            return self.fieldsets
        # This request's copy of the entry carries where its numbers may link (see below).
        obj.events_url = events_url_for(self.admin_site, request)
        return (*self.fieldsets[:3], self.WATCH_FIELDSET, *self.fieldsets[3:])

    @admin.display(description="uploads")
    def release_watch_panel(self, entry: AuditEntry) -> SafeString:
        return render_release_watch(entry, events_url=getattr(entry, "events_url", None))

    @admin.display(description="reason")
    def short_reason(self, entry: AuditEntry) -> str:
        return Truncator(entry.reason).chars(80)

    @admin.display(description="diff")
    def diff_table(self, entry: AuditEntry) -> SafeString:
        return render_diff(KINDS[entry.object_type], entry.diff)

    @admin.display(description="before")
    def before_json(self, entry: AuditEntry) -> str:
        return _pretty(entry.before)

    @admin.display(description="after")
    def after_json(self, entry: AuditEntry) -> str:
        return _pretty(entry.after)

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/rollback/",
                self.admin_site.admin_view(self.rollback_view),
                name="{}_{}_rollback".format(*info),
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        entry = self.get_object(request, unquote(object_id))
        extra = {
            "rollback_url": self._rollback_url(request, entry) if entry else "",
            "history_url": history_url(self.admin_site, entry) if entry else "",
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    def _rollback_url(self, request: HttpRequest, entry: AuditEntry) -> str:
        if not selectors.is_latest_change(entry) or not may_roll_back(
            self.admin_site, request, entry
        ):
            return ""
        return reverse(
            f"{self.admin_site.name}:policies_auditentry_rollback", args=[quote(entry.pk)]
        )

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """An entry has no history of its own; show its object's audit trail instead."""
        entry = self.get_object(request, unquote(object_id))
        if entry is None or not self.has_view_permission(request, entry):
            raise Http404("No such audit entry.")
        return HttpResponseRedirect(history_url(self.admin_site, entry))

    def rollback_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        entry = self.get_object(request, unquote(object_id))
        if entry is None or not self.has_view_permission(request, entry):
            raise Http404("No such audit entry.")
        return self.rollback_page(request, entry)


def _pretty(value: Any) -> str:
    if value is None:
        return "—"
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True))


# --- CSP violation reports ----------------------------------------------------------------------

# Here rather than with the imports above, so this section stays self-contained.


@admin.register(CspReport)
class CspReportAdmin(admin.ModelAdmin):
    """Reports as the endpoint counted them: read-only; deletable with the delete permission."""

    list_display = (
        "document_path",
        "directive",
        "blocked_uri",
        "count",
        "first_seen",
        "last_seen",
        "overflow",
    )
    list_filter = ("directive", "is_overflow")
    search_fields = ("document_path", "directive", "blocked_uri")
    date_hierarchy = "last_seen"
    fields = (
        ("document_path", "directive", "blocked_uri"),
        ("count", "is_overflow"),
        ("first_seen", "last_seen"),
    )
    readonly_fields = tuple(name for line in fields for name in line)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: CspReport | None = None) -> bool:
        return False

    @admin.display(boolean=True, description="overflow row", ordering="is_overflow")
    def overflow(self, report: CspReport) -> bool:
        """The row that counts reports past CSP_REPORTS_MAX_ROWS, which got no row of their own."""
        return report.is_overflow
