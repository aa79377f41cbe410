"""Stored uploads and the record of every upload decision."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from policies.models import UploadPolicy


class UploadStatus(models.TextChoices):
    STORED = "stored", "Stored"
    DELETED = "deleted", "Deleted"


class Upload(models.Model):
    """A file that passed its policy and is kept under UPLOAD_ROOT with a random name."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="uploads"
    )
    # PROTECT: a policy with stored files cannot be deleted (services answer policy_in_use).
    policy = models.ForeignKey(UploadPolicy, on_delete=models.PROTECT, related_name="uploads")
    policy_audit_seq = models.PositiveBigIntegerField(
        null=True, help_text="Audit entry of the policy version that accepted the file."
    )
    stored_name = models.CharField(max_length=100, unique=True)
    original_name = models.CharField(max_length=255)
    size_bytes = models.BigIntegerField(help_text="Size of the stored file.")
    sha256 = models.CharField(max_length=64, help_text="SHA-256 of the stored file.")
    content_type = models.CharField(max_length=100, help_text="The sniffed type.")
    reencoded = models.BooleanField(
        default=False,
        help_text="An image the pipeline re-encoded: only these may be served inline.",
    )
    status = models.CharField(
        max_length=16, choices=UploadStatus.choices, default=UploadStatus.STORED
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "policy", "created_at"])]

    def __str__(self) -> str:
        return self.original_name


class ScanStatus(models.TextChoices):
    """What the malware scan said about the file an event is about."""

    NONE = "", "Not reached"  # refused before the scan, or the policy does not scan
    CLEAN = "clean", "Scanned: clean"
    INFECTED = "infected", "Scanned: malware found"
    UNAVAILABLE = "unavailable", "Not scanned: scanner unavailable"
    TOO_LARGE = "too_large", "Not scanned: larger than the scanner accepts"
    NOT_CONFIGURED = "not_configured", "Not scanned: no scanner configured"


class UploadEvent(models.Model):
    """One upload decision, accepted or refused; read by the dashboard and by rehearsals."""

    policy_slug = models.CharField(max_length=50)
    code = models.CharField(max_length=40, help_text="accepted, or the refusal's error code.")
    would_refuse_code = models.CharField(
        max_length=40,
        blank=True,
        help_text="Under a report-only policy: the refusal the policy would have made.",
    )
    scan = models.CharField(max_length=16, choices=ScanStatus.choices, blank=True, default="")
    scan_signature = models.CharField(
        max_length=200, blank=True, help_text="The scanner's name for the malware it found."
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    filename = models.CharField(
        max_length=255,
        blank=True,
        help_text="The name the client sent, control characters removed.",
    )
    size_bytes = models.BigIntegerField(null=True, help_text="Size as received.")
    content_type = models.CharField(max_length=100, blank=True, help_text="The sniffed type.")
    sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 as received.")
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["policy_slug", "code", "created_at"])]

    def __str__(self) -> str:
        return f"{self.policy_slug}: {self.code}"


class RateCounter(models.Model):
    """Hits in one fixed time window, for throttles when the shared cache is the database
    (whose cache has no atomic increment); with Redis the counters live there instead."""

    key = models.CharField(max_length=200, unique=True)
    hits = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.hits}"
