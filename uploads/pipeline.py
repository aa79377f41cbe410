"""The upload pipeline: one code path for the upload form and the API.

    receive (uploads.receive) -> inspect (uploads.inspect) -> decide -> store -> record
                                                                      (uploads.services)

Decisions, in this order; the first refusal wins and is recorded as one UploadEvent:
1. `policy_not_found`, `policy_disabled`: the upload target.
2. `permission_denied`: who may upload under the policy.
3. `request_too_large`: the Content-Length, before a byte of the body is read.
4. While the body streams: `file_required` (a file outside the "file" field),
   `too_many_files`, `file_too_large`; and what Django's parser refuses (`parse_error`, ...).
5. `file_required`: no file at all.
6. `idempotency_conflict`, `idempotency_in_progress`: a key (Idempotency-Key header, or the
   form's one-time token) already used (uploads.idempotency); a completed one is replayed.
7. `quota_exceeded`: the files do not fit in the user's quota (uploads.quota; checked again,
   under a lock, as they are stored).
8. Each file in the order sent: the checks of uploads.inspect.
Then every file is stored and recorded together, or none is. Under a report-only policy the
refusals uploads.rehearsal lists are recorded on the accepted events instead of made.
Request throttles (uploads.throttles) answer `throttled` before any of this, and record nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, UnreadablePostError
from django.http.multipartparser import MultiPartParserError

from policies.models import UploadAccess, UploadPolicy
from policies.selectors import latest_seq_for, may_upload
from project.errors import PortcullisError, UploadRejected, request_parse_error
from project.net import client_ip
from uploads import idempotency
from uploads.idempotency import (
    Answer,
    IdempotentUpload,
    fingerprint,
    key_from_form,
    key_from_header,
)
from uploads.inspect import inspect_file, received_facts
from uploads.models import Upload
from uploads.quota import quota_refusal
from uploads.receive import FILE_FIELD, PolicyUploadHandler, ReceivedFile, install_receiver
from uploads.rehearsal import rehearses
from uploads.services import AcceptedFile, FileFacts, Uploader, record_decision, uploads_create

_PARSE_ERRORS = (MultiPartParserError, SuspiciousOperation, UnreadablePostError)


def policy_refusal(policy: UploadPolicy | None, slug: str) -> UploadRejected | None:
    if policy is None:
        return UploadRejected("policy_not_found", f'There is no upload target "{slug[:50]}".')
    if not policy.enabled:
        return UploadRejected("policy_disabled", "This upload target is switched off.")
    return None


class UploadAttempt:
    """One request's way through the pipeline. Create it before anything reads the body;
    `request` is Django's request (under DRF, `request._request`)."""

    def __init__(self, request: HttpRequest, slug: str, *, form: bool = False) -> None:
        """`form`: the upload page's post, whose one-time token comes inside the body."""
        self.request = request
        self.slug = slug
        # A request that may be a retry is told about the quota only after its key is known, so
        # an upload that filled the quota is replayed; others are refused before the body.
        self._quota_first = not form and idempotency.HEADER not in request.META
        self.policy = UploadPolicy.objects.filter(slug=slug).first()
        self.refusal = policy_refusal(self.policy, slug)
        # The version the checks apply, even if an admin edits the policy while the body streams.
        self.policy_audit_seq = self.policy and latest_seq_for(
            object_type="upload_policy", object_id=str(self.policy.pk)
        )
        self.handler = install_receiver(request, PolicyUploadHandler(self.policy, self.gate))
        self.facts = FileFacts()
        self._accepted: list[AcceptedFile] = []
        self._refused: PortcullisError | None = None
        self._gate_passed = False
        self._retry: IdempotentUpload | None = None

    def run(self, answer: Callable[[list[Upload]], Any]) -> Answer:
        """Decide, store and record; a refusal is recorded, then raised. `answer(uploads)` makes
        the response body of a successful upload, which a retry with the same key replays."""
        try:
            with self.refusing():
                return self._run(answer)
        finally:
            if self._retry:
                self._retry.release()  # unless the upload completed
            self.clean_up()

    @contextmanager
    def refusing(self) -> Iterator[None]:
        """Inside, an error reading the body becomes the recorded refusal it stands for: for
        code that reads the body before run() does (a CSRF check, DRF's authentication)."""
        try:
            yield
        except (PortcullisError, *_PARSE_ERRORS) as exc:
            refusal = self.refuse(exc)
            if refusal is exc:
                raise
            raise refusal from exc

    def refuse(self, exc: Exception) -> PortcullisError:
        """Record the refusal `exc` stands for (a parse error included); drop what arrived."""
        if exc is self._refused:  # already recorded on its way out of an inner refusing()
            return exc
        if isinstance(exc, PortcullisError):
            refusal = exc
        else:
            refusal = self.handler.rejection or request_parse_error(exc)
        self._refused = refusal
        record_decision(
            policy_slug=self.slug, code=refusal.code, uploader=self._uploader(), facts=self.facts
        )
        self.clean_up()
        return refusal

    def _uploader(self) -> Uploader:
        return uploader_of(self.request)

    def gate(self) -> UploadRejected | None:
        """Decisions 1 and 2, before the body is read: also when a CSRF check reads it first,
        for the session's user (a token's user is known only later, and checked in run())."""
        if self.refusal:
            return self.refusal
        user = getattr(self.request, "user", None)
        if not getattr(user, "is_authenticated", False) or self._gate_passed:
            return None
        if not may_upload(self.policy, user):
            return UploadRejected("permission_denied", _no_access_detail(self.policy))
        if self._quota_first:  # already at the limit?
            refusal = quota_refusal(self.policy, user, incoming_sizes=[0])
            if refusal and not rehearses(self.policy, refusal.code):
                return refusal
        self._gate_passed = True
        return None

    def _run(self, answer: Callable[[list[Upload]], Any]) -> Answer:
        if refusal := self.gate():
            raise refusal
        if not may_upload(self.policy, self.request.user):  # not signed in
            raise UploadRejected("permission_denied", "Sign in to upload files.")
        received = self._receive()
        if replay := self._claim_key(received):
            return replay
        self.facts = received_facts(received[0])
        self._check_quota(received)
        for file in received:
            self.facts = received_facts(file)
            self._accepted.append(inspect_file(self.policy, file, self.facts))
        uploads = uploads_create(
            policy=self.policy,
            policy_audit_seq=self.policy_audit_seq,
            files=self._accepted,
            uploader=self._uploader(),
        )
        # Stored: the key is never let go now, even if answering fails (a retry then gets 409
        # until the claim expires, never a second upload).
        stored, self._retry = self._retry, None
        try:
            result = Answer(status=HTTPStatus.CREATED, body=answer(uploads))
        except BaseException:
            if stored:
                stored.hold()
            raise
        if stored:
            stored.complete(result)
        return result

    def _check_quota(self, received: list[ReceivedFile]) -> None:
        """Decision 7 early, before the costly checks (after the key, so a retry of an upload
        that filled the quota is still replayed); uploads_create checks again, under a lock."""
        sizes = [file.size for file in received]
        refusal = quota_refusal(self.policy, self.request.user, incoming_sizes=sizes)
        if refusal and not rehearses(self.policy, refusal.code):
            raise refusal

    def _claim_key(self, received: list[ReceivedFile]) -> Answer | None:
        """Decision 6: claim the request's idempotency key, or the answer to replay."""
        key = key_from_header(self.request) or key_from_form(self.request)
        if key is None:
            return None
        self._retry = IdempotentUpload(self.request.user, key)
        files = [(file.size, file.sha256) for file in received]
        return self._retry.claim(fingerprint(self.slug, files))

    def _receive(self) -> list[ReceivedFile]:
        self.request.FILES  # noqa: B018 - reading it streams the body through the handler
        if self.handler.rejection:
            raise self.handler.rejection
        if not self.handler.received:
            raise UploadRejected(
                "file_required",
                "Choose a file to upload "
                f'(sent as multipart/form-data, in the field "{FILE_FIELD}").',
            )
        return self.handler.received

    def clean_up(self) -> None:
        """Close, and so delete, every temporary file of this attempt (safe to repeat)."""
        self.handler.discard()
        for accepted in self._accepted:
            accepted.content.close()


def uploader_of(request: HttpRequest) -> Uploader:
    """Who is acting, from where: what every decision and deletion records."""
    return Uploader(
        user=getattr(request, "user", None),
        client_ip=client_ip(request),
        request_id=getattr(request, "request_id", ""),
    )


def _no_access_detail(policy: UploadPolicy) -> str:
    if policy.upload_access == UploadAccess.STAFF:
        return "Only staff may upload here."
    return "Only members of certain groups may upload here."
