"""Upload policies, header rules and the append-only audit log of every change to them.

Only `policies/services.py` writes UploadPolicy and HeaderRule (inside `service_writes()`), so no
change can skip its audit entry; the audit log itself only ever grows.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.signals import pre_delete, pre_save
from django.utils.deconstruct import deconstructible

from policies import validators
from policies.filetypes import FILE_TYPES, extensions_for
from policies.units import format_bytes

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
MAX_FILE_SIZE_BYTES = 5 * GIB

_service_write = ContextVar("policies_service_write", default=False)
_audit_write = ContextVar("policies_audit_write", default=False)


@contextmanager
def _open(guard: ContextVar[bool]):
    token = guard.set(True)
    try:
        yield
    finally:
        guard.reset(token)


def service_writes():
    """Marks the code inside as a service, the only place allowed to write policies and rules."""
    return _open(_service_write)


def audit_writes():
    """Marks the code inside as policies.audit, the only place that appends to the audit log."""
    return _open(_audit_write)


class WriteRefused(Exception):
    """A write that skipped the services or the audit module (and so the audit chain)."""


class GuardedQuerySet(models.QuerySet):
    """Bulk writes send no signals and skip the guards below, so they are refused outright."""

    def _refuse(self, operation: str):
        raise WriteRefused(
            f"{operation} of {self.model.__name__} would skip the audit log; "
            "write each object through policies.services."
        )

    def bulk_create(self, *args, **kwargs):
        self._refuse("bulk_create()")

    def bulk_update(self, *args, **kwargs):
        self._refuse("bulk_update()")

    def update(self, **kwargs):
        self._refuse("Bulk update()")

    def delete(self):
        self._refuse("Bulk delete()")


class ServiceOnlyModel(models.Model):
    """Written only inside `service_writes()`: see the guards at the end of this module."""

    objects = GuardedQuerySet.as_manager()

    class Meta:
        abstract = True


class Mode(models.TextChoices):
    ENFORCE = "enforce", "Enforce"
    REPORT_ONLY = "report_only", "Report only (rehearse: record, do not refuse)"


class ScanMode(models.TextChoices):
    OFF = "off", "Off"
    ON = "on", "On when a scanner is configured"
    REQUIRED = "required", "Required (refuse when the scanner is unavailable)"


class UploadAccess(models.TextChoices):
    AUTHENTICATED = "authenticated", "Any signed-in user"
    GROUPS = "groups", "Members of the listed groups"
    STAFF = "staff", "Staff only"


@deconstructible
class Between:
    """A range check whose message an admin understands ("between 1 byte and 5 GiB")."""

    def __init__(self, low: int, high: int, *, in_bytes: bool = False) -> None:
        self.low, self.high, self.in_bytes = low, high, in_bytes

    def __call__(self, value: int) -> None:
        if not self.low <= value <= self.high:
            raise ValidationError(self.message, code="out_of_range")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Between) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((self.low, self.high, self.in_bytes))

    def constraint(self, field: str, prefix: str) -> models.CheckConstraint:
        """The same range as a database constraint (NULL, where allowed, passes)."""
        return models.CheckConstraint(
            condition=models.Q(**{f"{field}__gte": self.low, f"{field}__lte": self.high}),
            name=f"{prefix}_{field}_range",
            violation_error_message=f"{field.replace('_', ' ').capitalize()}: {self.message}",
        )

    @property
    def message(self) -> str:
        show = format_bytes if self.in_bytes else "{:,}".format
        return f"Must be between {show(self.low)} and {show(self.high)}."


# Each range is both a field validator (a message next to the field) and a database constraint.
POLICY_RANGES: dict[str, Between] = {
    "max_file_size_bytes": Between(1, MAX_FILE_SIZE_BYTES, in_bytes=True),
    "max_files_per_request": Between(1, 100),
    "max_request_bytes": Between(1, 10 * GIB, in_bytes=True),
    "filename_max_bytes": Between(16, 255),
    # Pillow's decompression-bomb guard stops at 89,478,485 pixels: no policy can promise more.
    "image_max_pixels": Between(1, 89_000_000),
    "image_max_side": Between(1, 100_000),
    "archive_max_entries": Between(1, 100_000),
    "archive_max_expanded_bytes": Between(1, 50 * GIB, in_bytes=True),
    "archive_max_ratio": Between(1, 10_000),
    "archive_max_depth": Between(0, 3),
    "quota_files": Between(1, 10_000_000),
    "quota_bytes": Between(1, 10_000 * GIB, in_bytes=True),
    "quota_period_seconds": Between(60, 366 * 86_400),
    "retention_days": Between(1, 36_500),
}
RULE_RANGES: dict[str, Between] = {
    "priority": Between(0, 1000),
    "hsts_max_age": Between(0, 2 * 31_536_000),
}


def _range(ranges: dict[str, Between], field: str) -> list[Between]:
    return [ranges[field]]


class UploadPolicy(ServiceOnlyModel):
    """What an upload target accepts, who may use it, and how its files are kept and served."""

    slug = models.SlugField(
        max_length=50, unique=True, help_text="Name of the upload target, e.g. avatars."
    )
    title = models.CharField(max_length=120, blank=True)
    enabled = models.BooleanField(default=True)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.ENFORCE)

    max_file_size_bytes = models.BigIntegerField(
        default=10 * MIB,
        validators=_range(POLICY_RANGES, "max_file_size_bytes"),
        help_text="Largest file accepted, in bytes (10485760 = 10 MiB).",
    )
    max_files_per_request = models.PositiveIntegerField(
        default=1, validators=_range(POLICY_RANGES, "max_files_per_request")
    )
    max_request_bytes = models.BigIntegerField(
        default=10 * MIB + 64 * KIB,
        validators=_range(POLICY_RANGES, "max_request_bytes"),
        help_text="Largest request body, in bytes; refused before it is read.",
    )
    allowed_types = models.JSONField(
        default=list, blank=True, help_text="Sniffed MIME types accepted, e.g. image/png."
    )
    allowed_extensions = models.JSONField(
        default=list, blank=True, help_text="File name extensions accepted, without the dot."
    )

    filename_max_bytes = models.PositiveIntegerField(
        default=255, validators=_range(POLICY_RANGES, "filename_max_bytes")
    )
    filename_allow_non_ascii = models.BooleanField(default=True)

    image_max_pixels = models.BigIntegerField(
        default=40_000_000, validators=_range(POLICY_RANGES, "image_max_pixels")
    )
    image_max_side = models.PositiveIntegerField(
        default=12_000, validators=_range(POLICY_RANGES, "image_max_side")
    )
    image_reencode = models.BooleanField(
        default=True, help_text="Re-encode images, dropping metadata and anything appended."
    )

    pdf_refuse_javascript = models.BooleanField(default=True)
    pdf_refuse_launch_actions = models.BooleanField(default=True)
    pdf_refuse_embedded_files = models.BooleanField(default=True)
    pdf_refuse_xfa = models.BooleanField(default=True)

    archive_max_entries = models.PositiveIntegerField(
        default=1000, validators=_range(POLICY_RANGES, "archive_max_entries")
    )
    archive_max_expanded_bytes = models.BigIntegerField(
        default=100 * MIB, validators=_range(POLICY_RANGES, "archive_max_expanded_bytes")
    )
    archive_max_ratio = models.PositiveIntegerField(
        default=100, validators=_range(POLICY_RANGES, "archive_max_ratio")
    )
    archive_max_depth = models.PositiveIntegerField(
        default=0,
        validators=_range(POLICY_RANGES, "archive_max_depth"),
        help_text="0: archives inside archives are refused.",
    )

    scan = models.CharField(max_length=16, choices=ScanMode.choices, default=ScanMode.ON)

    upload_access = models.CharField(
        max_length=16, choices=UploadAccess.choices, default=UploadAccess.AUTHENTICATED
    )
    allowed_groups = models.JSONField(
        default=list, blank=True, help_text="Group names, when only listed groups may upload."
    )

    quota_files = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=_range(POLICY_RANGES, "quota_files"),
        help_text="Files per user per period; empty for no limit.",
    )
    quota_bytes = models.BigIntegerField(
        null=True,
        blank=True,
        validators=_range(POLICY_RANGES, "quota_bytes"),
        help_text="Bytes per user per period; empty for no limit.",
    )
    quota_period_seconds = models.PositiveIntegerField(
        default=86_400, validators=_range(POLICY_RANGES, "quota_period_seconds")
    )
    retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=_range(POLICY_RANGES, "retention_days"),
        help_text="Empty: keep forever.",
    )
    serve_images_inline = models.BooleanField(
        default=False, help_text="Serve re-encoded raster images inline; everything else downloads."
    )

    owner = models.CharField(max_length=200, blank=True, help_text="Who answers for this policy.")
    expected_result = models.TextField(
        blank=True, help_text="What should happen to uploads under this policy."
    )
    notes = models.TextField(blank=True)

    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        verbose_name = "upload policy"
        verbose_name_plural = "upload policies"
        constraints = [
            *(between.constraint(field, "policy") for field, between in POLICY_RANGES.items()),
            models.CheckConstraint(
                condition=models.Q(max_request_bytes__gte=models.F("max_file_size_bytes")),
                name="policy_request_cap_fits_file",
                violation_error_message="Max request size must be at least the max file size.",
            ),
            models.CheckConstraint(
                condition=models.Q(mode__in=Mode.values),
                name="policy_mode_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(scan__in=ScanMode.values),
                name="policy_scan_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(upload_access__in=UploadAccess.values),
                name="policy_access_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def max_file_size_display(self) -> str:
        return format_bytes(self.max_file_size_bytes)

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        self._clean_types(errors)
        sizes = (self.max_request_bytes, self.max_file_size_bytes)
        if None not in sizes and sizes[0] < sizes[1]:
            errors.setdefault("max_request_bytes", []).append(
                "Max request size must be at least the max file size "
                f"({format_bytes(self.max_file_size_bytes)})."
            )
        self._clean_groups(errors)
        if errors:
            raise ValidationError(errors)

    def _clean_types(self, errors: dict[str, list[str]]) -> None:
        types, exts = self.allowed_types, self.allowed_extensions
        if not _is_str_list(types):
            errors["allowed_types"] = ["Give a list of MIME types."]
            return
        if not _is_str_list(exts):
            errors["allowed_extensions"] = ["Give a list of extensions."]
            return
        unknown = [t for t in types if t not in FILE_TYPES]
        if unknown:
            errors["allowed_types"] = [
                f"Unknown type(s): {', '.join(unknown)}. Known: {', '.join(sorted(FILE_TYPES))}."
            ]
        if len(set(types)) != len(types):
            errors.setdefault("allowed_types", []).append("A type is listed twice.")
        bad_form = [e for e in exts if not re.fullmatch(r"[a-z0-9]{1,10}", e)]
        if bad_form:
            errors["allowed_extensions"] = [
                f"Write extensions in lower case without the dot: {', '.join(bad_form)}."
            ]
            return
        carried = extensions_for(types)
        stray = [e for e in exts if e not in carried]
        if stray and not unknown:
            errors["allowed_extensions"] = [
                f"No allowed type carries the extension(s) {', '.join(stray)}; "
                "allow the matching type or remove them."
            ]
        unusable = [
            t for t in types if t in FILE_TYPES and not set(FILE_TYPES[t].extensions) & set(exts)
        ]
        if unusable:
            errors.setdefault("allowed_types", []).append(
                f"{', '.join(unusable)} cannot be uploaded: none of its extensions is allowed."
            )

    def _clean_groups(self, errors: dict[str, list[str]]) -> None:
        from django.contrib.auth.models import Group

        groups = self.allowed_groups
        if not _is_str_list(groups):
            errors["allowed_groups"] = ["Give a list of group names."]
            return
        missing = sorted(
            set(groups) - set(Group.objects.filter(name__in=groups).values_list("name", flat=True))
        )
        if missing:
            errors["allowed_groups"] = [f"No such group: {', '.join(missing)}."]
        if self.upload_access == UploadAccess.GROUPS and not groups:
            errors.setdefault("allowed_groups", []).append(
                "List at least one group when only listed groups may upload."
            )


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


class PathMatch(models.TextChoices):
    EXACT = "exact", "Exact path"
    PREFIX = "prefix", "Path prefix"
    REGEX = "regex", "Regular expression"


class FrameOptions(models.TextChoices):
    DENY = "DENY", "DENY"
    SAMEORIGIN = "SAMEORIGIN", "SAMEORIGIN"


class ReferrerPolicy(models.TextChoices):
    NO_REFERRER = "no-referrer", "no-referrer"
    NO_REFERRER_WHEN_DOWNGRADE = "no-referrer-when-downgrade", "no-referrer-when-downgrade"
    ORIGIN = "origin", "origin"
    ORIGIN_WHEN_CROSS_ORIGIN = "origin-when-cross-origin", "origin-when-cross-origin"
    SAME_ORIGIN = "same-origin", "same-origin"
    STRICT_ORIGIN = "strict-origin", "strict-origin"
    STRICT_ORIGIN_WHEN_CROSS_ORIGIN = (
        "strict-origin-when-cross-origin",
        "strict-origin-when-cross-origin",
    )


class OpenerPolicy(models.TextChoices):
    SAME_ORIGIN = "same-origin", "same-origin"
    SAME_ORIGIN_ALLOW_POPUPS = "same-origin-allow-popups", "same-origin-allow-popups"
    UNSAFE_NONE = "unsafe-none", "unsafe-none"


class EmbedderPolicy(models.TextChoices):
    REQUIRE_CORP = "require-corp", "require-corp"
    CREDENTIALLESS = "credentialless", "credentialless"
    UNSAFE_NONE = "unsafe-none", "unsafe-none"


class ResourcePolicy(models.TextChoices):
    SAME_ORIGIN = "same-origin", "same-origin"
    SAME_SITE = "same-site", "same-site"
    CROSS_ORIGIN = "cross-origin", "cross-origin"


class CrossDomainPolicies(models.TextChoices):
    NONE = "none", "none"
    MASTER_ONLY = "master-only", "master-only"
    BY_CONTENT_TYPE = "by-content-type", "by-content-type"
    ALL = "all", "all"


def _choice(choices: type[models.TextChoices]) -> models.CharField:
    return models.CharField(max_length=40, choices=choices.choices, blank=True)


# The rule field behind each header it can emit; any other name is one of its custom headers.
_HEADER_FIELDS = {
    "content-security-policy": "csp",
    "strict-transport-security": "hsts_max_age",
    "x-frame-options": "x_frame_options",
    "referrer-policy": "referrer_policy",
    "permissions-policy": "permissions_policy",
    "cross-origin-opener-policy": "cross_origin_opener_policy",
    "cross-origin-embedder-policy": "cross_origin_embedder_policy",
    "cross-origin-resource-policy": "cross_origin_resource_policy",
    "x-content-type-options": "x_content_type_options_nosniff",
    "cache-control": "cache_control",
    "x-permitted-cross-domain-policies": "x_permitted_cross_domain_policies",
    "reporting-endpoints": "reporting_endpoints",
}


def _field_setting(header: str) -> str:
    return _HEADER_FIELDS.get(header.lower(), "custom_headers")


def _largest_field(headers: dict[str, str]) -> str:
    """The field whose headers take the most bytes: where shortening helps most."""
    sizes: dict[str, int] = {}
    for name, value in headers.items():
        field = _field_setting(name)
        sizes[field] = sizes.get(field, 0) + validators.header_lines_bytes({name: value})
    return max(sizes, key=sizes.__getitem__)


class HeaderRule(ServiceOnlyModel):
    """Which security headers responses on matching paths carry."""

    name = models.SlugField(max_length=100, unique=True, help_text="Unique name, e.g. site-wide.")
    description = models.TextField(blank=True)
    match_type = models.CharField(
        max_length=10, choices=PathMatch.choices, default=PathMatch.PREFIX
    )
    path = models.CharField(max_length=500, default="/", help_text="e.g. / or /admin/ or ^/api/")
    host = models.CharField(max_length=253, blank=True, help_text="Only for this host; empty: all.")
    priority = models.IntegerField(default=100, validators=_range(RULE_RANGES, "priority"))
    enabled = models.BooleanField(default=True)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.ENFORCE)

    csp = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"default-src": ["\'self\'"], "object-src": ["\'none\'"]}',
    )
    hsts_max_age = models.PositiveIntegerField(
        null=True, blank=True, validators=_range(RULE_RANGES, "hsts_max_age")
    )
    hsts_include_subdomains = models.BooleanField(default=False)
    hsts_preload = models.BooleanField(default=False)
    x_frame_options = _choice(FrameOptions)
    referrer_policy = _choice(ReferrerPolicy)
    permissions_policy = models.JSONField(
        default=dict, blank=True, help_text='{"camera": [], "geolocation": ["self"]}'
    )
    cross_origin_opener_policy = _choice(OpenerPolicy)
    cross_origin_embedder_policy = _choice(EmbedderPolicy)
    cross_origin_resource_policy = _choice(ResourcePolicy)
    x_content_type_options_nosniff = models.BooleanField(default=False)
    cache_control = models.CharField(
        max_length=200, blank=True, help_text="e.g. no-store (applied to authenticated pages)."
    )
    x_permitted_cross_domain_policies = _choice(CrossDomainPolicies)
    reporting_endpoints = models.JSONField(
        default=dict, blank=True, help_text='{"csp": "/csp-report/"}'
    )
    custom_headers = models.JSONField(
        default=dict, blank=True, help_text='{"X-Robots-Tag": "none"}'
    )
    remove_headers = models.JSONField(default=list, blank=True, help_text='["X-Powered-By"]')

    owner = models.CharField(max_length=200, blank=True)
    expected_result = models.TextField(blank=True)
    notes = models.TextField(blank=True)

    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "name"]
        constraints = [
            *(between.constraint(field, "rule") for field, between in RULE_RANGES.items()),
            models.CheckConstraint(
                condition=models.Q(match_type__in=PathMatch.values), name="rule_match_type_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(mode__in=Mode.values), name="rule_mode_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        checks = {
            "csp": validators.validate_csp,
            "permissions_policy": validators.validate_permissions_policy,
            "reporting_endpoints": validators.validate_reporting_endpoints,
            "custom_headers": validators.validate_custom_headers,
            "remove_headers": validators.validate_remove_headers,
            "cache_control": validators.validate_cache_control,
        }
        for field, check in checks.items():
            try:
                check(getattr(self, field))
            except ValidationError as exc:
                errors[field] = exc.messages
        if message := self._path_error():
            errors["path"] = [message]
        if self.host and not re.fullmatch(
            r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*",
            self.host,
        ):
            errors["host"] = [
                "Give a lower-case host name such as example.com (no scheme or port)."
            ]
        if (self.hsts_include_subdomains or self.hsts_preload) and self.hsts_max_age is None:
            errors["hsts_max_age"] = ["Set a max-age to send HSTS with these options."]
        elif self.hsts_preload and not (
            self.hsts_include_subdomains and self.hsts_max_age >= 31_536_000
        ):
            errors["hsts_preload"] = [
                "Preload needs includeSubDomains and a max-age of at least a year (31536000)."
            ]
        if not errors:
            errors.update(self._oversized_headers())
        if errors:
            raise ValidationError(errors)

    def _oversized_headers(self) -> dict[str, list[str]]:
        """Each header as built must fit in 8 KiB, and all of them together in 16 KiB: proxies
        hold a response's headers in one buffer and answer 502 when they overflow it."""
        from policies.headers import rule_headers

        headers = rule_headers(self)
        errors: dict[str, list[str]] = {}
        for name, value in headers.items():
            if len(value.encode()) > validators.MAX_HEADER_VALUE_BYTES:
                errors.setdefault(_field_setting(name), []).append(
                    f"{name} would be {len(value.encode())} bytes; "
                    "at most 8 KiB fits through proxies."
                )
        total = validators.header_lines_bytes(headers)
        if total > validators.MAX_RULE_HEADERS_BYTES:
            errors.setdefault(_largest_field(headers), []).append(
                f"This rule's headers would total {total} bytes (names and values); "
                f"at most {validators.MAX_RULE_HEADERS_BYTES} bytes (16 KiB) fit through proxies. "
                "Shorten the largest ones."
            )
        return errors

    def _path_error(self) -> str | None:
        if not self.path or not validators._VISIBLE_ASCII.fullmatch(self.path):
            return "Give a path of visible ASCII characters."
        if self.match_type == PathMatch.REGEX:
            try:
                re.compile(self.path)
            except (re.error, OverflowError, RecursionError) as exc:  # a{4294967296} overflows
                return f"Not a valid regular expression: {exc}."
            return None
        if not self.path.startswith("/"):
            return "Exact and prefix paths start with /."
        return None


class AuditAction(models.TextChoices):
    CREATE = "create", "Create"
    UPDATE = "update", "Update"
    DELETE = "delete", "Delete"
    ROLLBACK = "rollback", "Roll back"
    IMPORT = "import", "Import"


class AuditEntry(models.Model):
    """One change to a policy or rule. Rows are only ever added; `entry_hash` chains them."""

    seq = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField()
    actor = models.CharField(max_length=200, help_text="Who made the change, as text (hashed).")
    # PROTECT: a user who changed policies is deactivated, not deleted, so the link stays.
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=16, choices=AuditAction.choices)
    object_type = models.CharField(max_length=40)
    object_id = models.CharField(max_length=40)
    object_repr = models.CharField(max_length=200)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    diff = models.JSONField(default=dict, blank=True)
    reason = models.TextField()
    rollback_note = models.TextField(blank=True)
    rolls_back_seq = models.PositiveBigIntegerField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    key_id = models.CharField(max_length=32)
    prev_hash = models.CharField(max_length=64)
    entry_hash = models.CharField(max_length=64, unique=True)

    objects = GuardedQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["object_type", "object_id", "-seq"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(seq__gte=1), name="audit_seq_positive"),
            models.CheckConstraint(
                condition=models.Q(action__in=AuditAction.values), name="audit_action_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.object_type} {self.object_repr}"


class AuditHead(models.Model):
    """The chain's head (one row): how many entries and the last hash, under its own HMAC."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    count = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64)
    key_id = models.CharField(max_length=32)
    head_hmac = models.CharField(max_length=64)

    objects = GuardedQuerySet.as_manager()

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="audit_head_single")]

    def __str__(self) -> str:
        return f"audit head: {self.count} entries"


class CspReport(models.Model):
    """Browser CSP violation reports, counted per (document path, directive, blocked URI).

    Distinct rows are capped by a setting; past the cap, reports are counted in one overflow row.
    """

    document_path = models.CharField(max_length=500)
    directive = models.CharField(max_length=100)
    blocked_uri = models.CharField(max_length=500)
    is_overflow = models.BooleanField(default=False)
    count = models.PositiveBigIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-last_seen"]
        verbose_name = "CSP report"
        constraints = [
            models.UniqueConstraint(
                fields=["document_path", "directive", "blocked_uri"], name="csp_report_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.directive} on {self.document_path}: {self.blocked_uri} ({self.count})"


# The guards. Signals, because loaddata's raw saves bypass save() but still send pre_save.


def _refuse_outside_services(sender, instance, **kwargs) -> None:
    if not _service_write.get():
        raise WriteRefused(
            f"{sender.__name__} is written through policies.services only, so every change "
            "has its audit entry."
        )


def _refuse_audit_rewrite(sender, instance, **kwargs) -> None:
    appending = _audit_write.get() and (sender is AuditHead or instance._state.adding)
    if not appending:
        raise WriteRefused("The audit log is append-only: entries are never changed or removed.")


def _refuse_audit_delete(sender, instance, **kwargs) -> None:
    raise WriteRefused("The audit log is append-only: entries are never changed or removed.")


for _model in (UploadPolicy, HeaderRule):
    pre_save.connect(_refuse_outside_services, sender=_model, dispatch_uid=f"guard-{_model}")
    pre_delete.connect(_refuse_outside_services, sender=_model, dispatch_uid=f"guard-d-{_model}")
for _model in (AuditEntry, AuditHead):
    pre_save.connect(_refuse_audit_rewrite, sender=_model, dispatch_uid=f"guard-{_model}")
    pre_delete.connect(_refuse_audit_delete, sender=_model, dispatch_uid=f"guard-d-{_model}")
