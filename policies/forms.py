"""Admin forms for policies and rules.

Every save says why (`reason`) and how to undo it (`rollback_note`), and carries the version it
was based on, so the service refuses a form loaded before someone else's save instead of letting
it overwrite theirs. The forms only validate; the admin hands their cleaned values to
`policies.services` and shows its refusals on them.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models
from django.http.request import split_domain_port

from policies.filetypes import FILE_TYPES
from policies.headers import request_path
from policies.models import HeaderRule, UploadPolicy
from policies.services import NOT_EDITABLE
from policies.units import format_bytes
from project.errors import PolicyConflict

# Fields stored as a number of bytes: shown humanized next to the number.
BYTE_FIELDS = frozenset(
    {"max_file_size_bytes", "max_request_bytes", "archive_max_expanded_bytes", "quota_bytes"}
)


def editable_fields(model: type[models.Model]) -> list[str]:
    """The model fields an admin may set: everything but identity and bookkeeping."""
    return [
        f.name
        for f in model._meta.concrete_fields
        if f.editable and not f.primary_key and f.name not in NOT_EDITABLE
    ]


def readable_messages(error: ValidationError) -> list[str]:
    """A ValidationError as plain sentences, each prefixed with its field when it has one."""
    if not hasattr(error, "error_dict"):
        return error.messages
    return [
        message if name == NON_FIELD_ERRORS else f"{name}: {message}"
        for name, messages in error.message_dict.items()
        for message in messages
    ]


def reason_field() -> forms.CharField:
    return forms.CharField(
        label="Reason",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why you are making this change. Kept in the audit log with your name.",
    )


def rollback_note_field(*, required: bool = True, help_text: str = "") -> forms.CharField:
    return forms.CharField(
        label="Rollback note",
        required=required,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=help_text
        or "How to undo this if it goes wrong, e.g. “roll back this entry from the history”.",
    )


class StringListField(forms.CharField):
    """A JSON list of short strings (extensions, group or header names), typed comma-separated."""

    def __init__(self, *, encoder: Any = None, decoder: Any = None, **kwargs: Any) -> None:
        # Built by models.JSONField.formfield(), which passes a JSON encoder and decoder.
        kwargs.setdefault("widget", forms.TextInput(attrs={"size": 60}))
        super().__init__(**kwargs)
        self.help_text = f"{self.help_text} Comma-separated.".strip()

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(str(v) for v in value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list):
            return value
        text = super().to_python(value)
        return [part.strip() for part in text.split(",") if part.strip()]


class JSONObjectField(forms.JSONField):
    """A JSON object box where emptying the box means {} (never null), shown indented."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4, "cols": 60}))
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        if value in self.empty_values:
            return {}
        try:
            return super().to_python(value)
        except (ValueError, RecursionError) as exc:  # a 5000-digit number, 2000 nested [
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError(
                "Enter valid JSON (numbers of at most 4300 digits, nested at most a few "
                "hundred levels).",
                code="invalid",
            ) from None

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, cls=self.encoder)


class FileTypesField(forms.MultipleChoiceField):
    """The sniffed types a policy allows, picked from the curated registry."""

    def __init__(self, *, encoder: Any = None, decoder: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.CheckboxSelectMultiple)
        kwargs["choices"] = [
            (mime, f"{t.label} ({mime}){', active content' if t.active else ''}")
            for mime, t in FILE_TYPES.items()
        ]
        super().__init__(**kwargs)


class WhyMixin:
    """The reason and rollback note a form collected, as the services take them."""

    cleaned_data: dict[str, Any]

    def why(self) -> dict[str, str]:
        return {
            "reason": self.cleaned_data["reason"],
            "rollback_note": self.cleaned_data["rollback_note"],
        }


class AuditedModelForm(WhyMixin, forms.ModelForm):
    """A model form whose save needs a reason, a rollback note and the version it was based on."""

    reason = reason_field()
    rollback_note = rollback_note_field()
    based_on_version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1)

    # The service's refusal of this very POST, set by the admin when it shows the form again.
    service_error: ClassVar[ValidationError | PolicyConflict | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["based_on_version"].initial = self.instance.version
        self._show_sizes()

    def _show_sizes(self) -> None:
        for name in BYTE_FIELDS & set(self.fields):
            value = self.initial.get(name)
            if isinstance(value, int):
                field = self.fields[name]
                field.help_text = f"{field.help_text} Now {format_bytes(value)}.".strip()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.instance.pk is not None and cleaned.get("based_on_version") is None:
            # Only a damaged page sends no version; whether it is current is the service's call.
            raise ValidationError(
                "This form does not say which version you edited, so nothing was saved. "
                "Reload the page and apply your change again.",
                code="version_missing",
            )
        if self.service_error is not None:
            self.add_service_error(self.service_error)
        return cleaned

    def add_service_error(self, error: ValidationError | PolicyConflict) -> None:
        """Show a service's refusal on the form: next to its field where the form has one."""
        if isinstance(error, PolicyConflict):
            error = ValidationError(error.detail, code=error.code)
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        elsewhere = {}
        for name, errors in error.error_dict.items():
            if name in self.fields:
                self.add_error(name, errors)
            else:
                elsewhere[name] = errors
        if elsewhere:
            self.add_error(None, readable_messages(ValidationError(elsewhere)))

    def model_data(self) -> dict[str, Any]:
        """The cleaned values of the model's own fields, as the services take them."""
        names = {f.name for f in self._meta.model._meta.concrete_fields}
        return {name: value for name, value in self.cleaned_data.items() if name in names}


class PolicyForm(AuditedModelForm):
    class Meta:
        model = UploadPolicy
        fields = editable_fields(UploadPolicy)
        field_classes = {
            "allowed_types": FileTypesField,
            "allowed_extensions": StringListField,
            "allowed_groups": StringListField,
        }
        widgets = {
            "expected_result": forms.Textarea(attrs={"rows": 3}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }

    def clean_allowed_types(self) -> list[str]:
        """Keep the stored order of types that stay, so re-saving does not show a false diff."""
        chosen = self.cleaned_data["allowed_types"]
        stored = self.initial.get("allowed_types") or []
        kept = [t for t in stored if t in chosen]
        return kept + [t for t in chosen if t not in kept]


class RuleForm(AuditedModelForm):
    class Meta:
        model = HeaderRule
        fields = editable_fields(HeaderRule)
        field_classes = {
            "csp": JSONObjectField,
            "permissions_policy": JSONObjectField,
            "reporting_endpoints": JSONObjectField,
            "custom_headers": JSONObjectField,
            "remove_headers": StringListField,
        }
        labels = {
            "csp": "Content-Security-Policy",
            "hsts_max_age": "HSTS max-age (seconds)",
            "hsts_include_subdomains": "HSTS includeSubDomains",
            "hsts_preload": "HSTS preload",
            "x_frame_options": "X-Frame-Options",
            "referrer_policy": "Referrer-Policy",
            "permissions_policy": "Permissions-Policy",
            "cross_origin_opener_policy": "Cross-Origin-Opener-Policy",
            "cross_origin_embedder_policy": "Cross-Origin-Embedder-Policy",
            "cross_origin_resource_policy": "Cross-Origin-Resource-Policy",
            "x_content_type_options_nosniff": "X-Content-Type-Options: nosniff",
            "cache_control": "Cache-Control",
            "x_permitted_cross_domain_policies": "X-Permitted-Cross-Domain-Policies",
            "reporting_endpoints": "Reporting-Endpoints",
            "remove_headers": "Headers to remove",
        }
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "expected_result": forms.Textarea(attrs={"rows": 3}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }


class WhyForm(WhyMixin, forms.Form):
    """Reason and rollback note for a change that has no edit form (a delete)."""

    required_css_class = "required"

    reason = reason_field()
    rollback_note = rollback_note_field(
        help_text="How to undo this if it goes wrong, e.g. “roll back the delete entry”."
    )


class DeleteForm(WhyForm):
    """Deleting one object: also the version the admin saw, so a changed object is kept."""

    based_on_version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)


class BulkDeleteForm(WhyForm):
    """Deleting several: also, per object, the version its confirmation page showed.

    The versions travel as hidden `version_<pk>` inputs beside the form's own fields; a missing
    or damaged one refuses that object only, so they are read per object rather than validated.
    """

    @staticmethod
    def version_name(obj: models.Model) -> str:
        return f"version_{obj.pk}"

    def posted_version(self, obj: models.Model) -> int | None:
        """The version posted for `obj`; None when it is missing or not a whole number from 1."""
        try:
            return forms.IntegerField(min_value=1).clean(self.data.get(self.version_name(obj)))
        except ValidationError:
            return None


class RollbackForm(WhyMixin, forms.Form):
    required_css_class = "required"

    reason = reason_field()
    rollback_note = rollback_note_field(
        required=False,
        help_text="Optional. Left empty, it says: roll back this new entry to return to the "
        "state the rolled-back entry produced.",
    )


# Empty, or a host name or an IPv6 literal with an optional port: what the preview accepts, and the
# API's description of the `host` parameter says (a subset of what Django accepts in a Host header).
PREVIEW_HOST_PATTERN = (
    r"^(?:(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f]*:[0-9A-Fa-f.:]+\])"
    r"(?::[0-9]{1,5})?)?$"
)
PREVIEW_PATH_PATTERN = r"^/"


class HeaderPreviewForm(forms.Form):
    """The request to preview on the rule list: a GET form whose names never clash with lookups.

    Bound only when `preview_path` is in the query string, so "over HTTPS" starts ticked and an
    unticked box on a submitted form means plain HTTP.
    """

    preview_path = forms.CharField(
        label="Path",
        max_length=2000,
        strip=False,  # " /admin/" is refused, not quietly changed: the API's schema says so
        widget=forms.TextInput(attrs={"placeholder": "/admin/", "size": 30}),
    )
    preview_host = forms.CharField(
        label="Host",
        required=False,
        max_length=253,
        strip=False,
        help_text="Empty: any host.",
        widget=forms.TextInput(attrs={"placeholder": "example.com", "size": 20}),
    )
    preview_https = forms.BooleanField(
        label="over HTTPS", label_suffix="", required=False, initial=True
    )
    preview_signed_in = forms.BooleanField(
        label="signed-in user",
        label_suffix="",
        required=False,
        help_text="On a page that reads who is signed in (only those get Cache-Control).",
    )

    PARAMS = ("preview_path", "preview_host", "preview_https", "preview_signed_in")

    @classmethod
    def from_query(cls, query: Any) -> HeaderPreviewForm:
        return cls(query if "preview_path" in query else None)

    def clean_preview_path(self) -> str:
        """The path as the middleware sees it (request.path_info): a query string or fragment
        dropped and percent-encoding decoded, so /t/?a=1 previews what a request for it gets."""
        path = self.cleaned_data["preview_path"]
        if not re.match(PREVIEW_PATH_PATTERN, path):
            raise ValidationError("Give a path that starts with /, e.g. /admin/.", code="path")
        return request_path(path)

    def clean_preview_host(self) -> str:
        raw = self.cleaned_data["preview_host"]
        if not raw:
            return ""
        host, _port = split_domain_port(raw)  # as the middleware reads the Host header
        if not host or not re.fullmatch(PREVIEW_HOST_PATTERN, raw):
            raise ValidationError("Give a host name such as example.com.", code="host")
        return host.lower()

    def preview_arguments(self) -> dict[str, Any]:
        """The arguments of `policies.headers.preview` this form asks for."""
        data = self.cleaned_data
        return {
            "path": data["preview_path"],
            "host": data["preview_host"],
            "secure": data["preview_https"],
            "authenticated": data["preview_signed_in"],
        }


class RehearsalCopyForm(WhyForm):
    """Copying rules as report-only rehearsals: why, and how to undo it."""

    rollback_note = rollback_note_field(
        help_text="How to undo this if it goes wrong, e.g. “delete the rehearsal copies”."
    )
