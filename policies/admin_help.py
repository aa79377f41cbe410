"""What each field of the policy and rule change forms means, with an example: the admin's help.

Kept apart from the models so the wording can say how the admin shows a field (sizes in bytes,
lists comma-separated) without touching the API's description of the same fields.
"""

from __future__ import annotations

POLICY_HELP = {
    "slug": "The upload target's name in URLs and the API, e.g. avatars (/upload/avatars/).",
    "title": "What people call it, e.g. Profile pictures.",
    "enabled": "Off: every upload here is refused with policy_disabled, e.g. while migrating.",
    "mode": "Report only rehearses a change: uploads are accepted and what this policy would "
    "refuse is recorded, e.g. before lowering a limit.",
    "max_file_size_bytes": "Largest file accepted, in bytes, e.g. 10485760 for 10 MiB.",
    "max_files_per_request": "Files one upload may carry, e.g. 1.",
    "max_request_bytes": "Largest request body, in bytes, refused before it is read; at least the "
    "file size plus about 64 KiB for the form, e.g. 10551296 (10.1 MiB).",
    "allowed_types": "Types sniffed from the content (the client's Content-Type is never "
    "trusted), e.g. PNG and JPEG for avatars.",
    "allowed_extensions": "File name extensions, without the dot, e.g. png, jpg, jpeg.",
    "filename_max_bytes": "Longest file name kept, in UTF-8 bytes, e.g. 255.",
    "filename_allow_non_ascii": "Allow names beyond ASCII, e.g. “Strand im Mai.png”; off keeps "
    "ASCII only.",
    "image_max_pixels": "Most pixels (width times height) an image may have, checked before "
    "decoding, e.g. 40000000 (40 megapixels).",
    "image_max_side": "Longest side in pixels, e.g. 12000.",
    "image_reencode": "Re-encode images, dropping metadata (GPS position, camera) and anything "
    "appended, e.g. on for avatars.",
    "pdf_refuse_javascript": "Refuse PDFs that carry JavaScript, e.g. an /OpenAction script.",
    "pdf_refuse_launch_actions": "Refuse PDFs that would start a program, e.g. a /Launch action "
    "opening cmd.exe.",
    "pdf_refuse_embedded_files": "Refuse PDFs with files inside them, e.g. an attached .exe.",
    "pdf_refuse_xfa": "Refuse XFA forms, e.g. old Adobe LiveCycle forms.",
    "archive_max_entries": "Most entries in a ZIP, TAR or Office file, e.g. 1000.",
    "archive_max_expanded_bytes": "Most bytes an archive may expand to, in bytes, counted "
    "without extracting, e.g. 104857600 for 100 MiB.",
    "archive_max_ratio": "Largest expansion ratio of an entry (checked past 64 KiB), e.g. 100: a "
    "1 MiB entry may expand to 100 MiB. Stops zip bombs.",
    "archive_max_depth": "Archives inside archives, e.g. 0 refuses any nested archive.",
    "scan": "The malware scan by clamd, e.g. Required for files shared with others.",
    "upload_access": "Who may upload here, e.g. Staff only for site assets.",
    "allowed_groups": "Group names, when only listed groups may upload, e.g. editors, press.",
    "quota_files": "Files per user per period; empty for no limit, e.g. 100.",
    "quota_bytes": "Bytes per user per period; empty for no limit, e.g. 1073741824 for 1 GiB.",
    "quota_period_seconds": "The quota's period in seconds, e.g. 86400 for a day.",
    "retention_days": "Days a file is kept; empty keeps it forever, e.g. 30.",
    "serve_images_inline": "Show re-encoded raster images in the browser; everything else "
    "downloads, e.g. on for avatars.",
    "owner": "Who answers for this policy, e.g. the web team.",
    "expected_result": "What should happen to uploads under it, e.g. “avatars under 2 MiB "
    "accepted, anything else refused”. Compared with the events after a change.",
    "notes": "Anything else, e.g. a ticket number.",
}

RULE_HELP = {
    "name": "A unique name, e.g. site-wide or api.",
    "description": "What the rule is for, e.g. “API responses are never framed”.",
    "match_type": "How the path is compared, e.g. Path prefix: /admin/ matches /admin/login/.",
    "path": "e.g. / (prefix: everything), /admin/ or, as a regular expression, ^/api/.",
    "host": "Only for this host, lower case without scheme or port, e.g. api.example.com; "
    "empty: every host.",
    "priority": "Higher wins for a header both rules set, e.g. 200 over the site-wide 100.",
    "enabled": "Off: the rule applies nowhere, e.g. while it is reviewed.",
    "mode": "Report only rehearses: CSP and Permissions-Policy go out as -Report-Only headers, "
    "the others are only previewed and logged, e.g. to try a stricter CSP first.",
    "csp": 'Directive to sources, as JSON, e.g. {"default-src": ["\'self\'"], '
    '"img-src": ["\'self\'", "data:"]}.',
    "hsts_max_age": "Seconds browsers keep to HTTPS, e.g. 31536000 (a year); empty sends no "
    "Strict-Transport-Security.",
    "hsts_include_subdomains": "Also for every subdomain, e.g. on when all of them serve HTTPS.",
    "hsts_preload": "Ask to be preloaded in browsers, e.g. for a domain that will only ever "
    "serve HTTPS; needs includeSubDomains and a year.",
    "x_frame_options": "Who may frame the pages, e.g. DENY.",
    "referrer_policy": "What the Referer header carries, e.g. same-origin (not no-referrer: "
    "form posts would send Origin: null).",
    "permissions_policy": 'Feature to allowed origins, as JSON, e.g. {"camera": [], '
    '"geolocation": ["self"]}.',
    "cross_origin_opener_policy": "Isolates the window from others it opens, e.g. same-origin.",
    "cross_origin_embedder_policy": "Which resources a page may embed, e.g. require-corp.",
    "cross_origin_resource_policy": "Who may load these responses, e.g. same-origin.",
    "x_content_type_options_nosniff": "Send X-Content-Type-Options: nosniff, e.g. on everywhere.",
    "cache_control": "Sent on pages for a signed-in user, e.g. no-store.",
    "x_permitted_cross_domain_policies": "For Flash and PDF readers, e.g. none.",
    "reporting_endpoints": 'Endpoint name to URL, as JSON, e.g. {"csp": "/csp-report/"}.',
    "custom_headers": 'Other headers, as JSON, e.g. {"X-Robots-Tag": "none"}.',
    "remove_headers": "Headers taken off responses, e.g. X-Powered-By.",
    "owner": "Who answers for this rule, e.g. the security team.",
    "expected_result": "What responses should get, e.g. “every admin page: the strict CSP with "
    "the admin's style hash”.",
    "notes": "Anything else, e.g. a ticket number.",
}

# The "why" of every save, on both forms.
WHY_HELP = {
    "reason": "Why you are making this change, e.g. “the mobile app sends 5 MiB at most "
    "(ticket OPS-42)”. Kept in the audit log with your name.",
    "rollback_note": "How to undo it if it goes wrong, and what to watch, e.g. “roll back this "
    "entry from the history if file_too_large refusals rise”.",
}
