"""Report-only policies: which refusals a rehearsal records instead of making.

Under a policy in `report_only` mode, a file the policy would refuse for one of these codes is
kept, and its `accepted` event records the code as `would_refuse_code` (the log line too).
Everything else is enforced in every mode: where and who (`policy_not_found`, `policy_disabled`,
`permission_denied`), the request's framing and size cap (`request_too_large`, `file_required`,
parse errors), retries (`idempotency_*`), throttles, and the malware scan (`malware_detected`,
and a required scan that cannot run).
"""

from __future__ import annotations

from policies.models import Mode, UploadPolicy

REHEARSABLE = frozenset(
    {
        "file_too_large",
        "too_many_files",
        "empty_file",
        "filename_invalid",
        "extension_not_allowed",
        "type_not_allowed",
        "type_mismatch",
        "image_invalid",
        "image_too_large",
        "active_content",
        "archive_rejected",
        "quota_exceeded",
    }
)


def rehearses(policy: UploadPolicy, code: str) -> bool:
    """Whether `policy` records a refusal with `code` instead of making it."""
    return policy.mode == Mode.REPORT_ONLY and code in REHEARSABLE
