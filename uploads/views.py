"""The upload pages: upload under a policy, list my uploads, download and delete them.

The upload form posts through the same pipeline as the API (uploads.pipeline) and shows the
same `detail` text next to the field when it refuses.
"""

from __future__ import annotations

import secrets

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_safe

from policies.filetypes import label_of
from policies.models import Mode, UploadPolicy
from policies.selectors import may_upload
from policies.units import format_bytes
from project.errors import PortcullisError, UploadRejected
from uploads import idempotency, services
from uploads.models import Upload
from uploads.pipeline import UploadAttempt, policy_refusal, uploader_of
from uploads.receive import FILE_FIELD
from uploads.selectors import may_delete, uploads_visible_to
from uploads.serving import download_response
from uploads.throttles import check_upload_throttles

DEFAULT_POLICY = "default"


@csrf_exempt  # checked in _store_checked, once the policy's limits guard the body
@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def upload_page(request: HttpRequest, slug: str = DEFAULT_POLICY) -> HttpResponse:
    if request.method != "POST":
        return _form(request, slug)
    try:
        check_upload_throttles(request)
    except PortcullisError as throttled:
        return _form(request, slug, refusal=throttled)
    attempt = UploadAttempt(request, slug, form=True)
    try:
        with attempt.refusing():  # the CSRF check reads the body, so it can raise a refusal
            response = _store_checked(request, attempt)
            if attempt.handler.rejection:  # CSRF failed on a body the handler had cut short
                raise attempt.handler.rejection
            return response
    except PortcullisError as refusal:
        return _form(request, slug, refusal=refusal)
    finally:
        attempt.clean_up()  # also when the CSRF check refused


@csrf_protect
def _store_checked(request: HttpRequest, attempt: UploadAttempt) -> HttpResponse:
    result = attempt.run(answer=lambda uploads: [upload.original_name for upload in uploads])
    names = ", ".join(result.body)
    if result.replayed:  # the form was sent twice: one upload, the same answer
        messages.info(request, f"Already uploaded {names} (the form was sent twice).")
    else:
        messages.success(request, f"Uploaded {names}.")
    return redirect("uploads:mine")


def _form(request: HttpRequest, slug: str, refusal: PortcullisError | None = None) -> HttpResponse:
    policy = UploadPolicy.objects.filter(slug=slug).first()
    refusal = refusal or policy_refusal(policy, slug) or _access_refusal(policy, request.user)
    usable = refusal is None or refusal.code not in ("policy_not_found", "policy_disabled")
    context = {
        "policy": policy if usable else None,
        "slug": slug,
        "refusal": refusal,
        "field": FILE_FIELD,
        "accept": ",".join(_accept(policy)) if usable else "",
        "extensions": _accept(policy) if usable else [],
        "type_labels": [label_of(t) for t in policy.allowed_types] if usable else [],
        # Read by static/uploads/upload.js: it uploads each file to the API under this policy,
        # and checks the policy's limits first where the server would enforce them.
        "api_url": f"{reverse('api-uploads')}?{urlencode({'policy': slug})}",
        "prechecks": usable and policy.mode == Mode.ENFORCE,
        # One-time token: a double submit of this form makes one upload (uploads.idempotency).
        "idempotency_field": idempotency.FORM_FIELD,
        "idempotency_key": secrets.token_urlsafe(24),
    }
    response = render(
        request, "uploads/upload.html", context, status=refusal.status if refusal else 200
    )
    if refusal and "retry_after" in refusal.extra:
        response["Retry-After"] = str(refusal.extra["retry_after"])
    return response


def _access_refusal(policy: UploadPolicy, user) -> UploadRejected | None:
    if may_upload(policy, user):
        return None
    return UploadRejected("permission_denied", "You may not upload files here.")


def _accept(policy: UploadPolicy) -> list[str]:
    """The file chooser's filter: the policy's extensions (types alone would let others in)."""
    return [f".{extension}" for extension in policy.allowed_extensions]


@login_required
@require_safe
def my_uploads(request: HttpRequest) -> HttpResponse:
    uploads = uploads_visible_to(request.user).filter(owner=request.user)
    return render(request, "uploads/mine.html", {"uploads": [_shown(u) for u in uploads]})


def _shown(upload: Upload) -> Upload:
    """The upload with its size and type worded as the upload page words them."""
    upload.size_display = format_bytes(upload.size_bytes)
    upload.type_label = label_of(upload.content_type)
    return upload


@login_required
@require_safe
def download(request: HttpRequest, pk: str) -> HttpResponse:
    return download_response(get_object_or_404(uploads_visible_to(request.user), pk=pk))


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def delete(request: HttpRequest, pk: str) -> HttpResponse:
    upload: Upload = get_object_or_404(uploads_visible_to(request.user), pk=pk)
    if not may_delete(request.user, upload):
        return render(request, "uploads/confirm_delete.html", {"upload": upload}, status=403)
    if request.method == "POST":
        services.upload_delete(upload=upload, uploader=uploader_of(request))
        messages.success(request, f"Deleted {upload.original_name}.")
        return redirect("uploads:mine")
    context = {"upload": _shown(upload), "allowed": True}
    return render(request, "uploads/confirm_delete.html", context)
