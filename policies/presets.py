"""Header-rule presets an admin can start from, and the rules `migrate` seeds.

"strict" is the seeded site-wide rule: an A+ on the MDN HTTP Observatory for HTML pages. The admin
rule adds what Django's admin needs under it (the hash of its one inline <style>), and downloads of
uploaded files get a sandboxed, script-free policy of their own.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

import django.contrib.admin

CSP_REPORT_PATH = "/csp-report/"

# Powerful features, denied everywhere; only names Chromium recognises (others log warnings).
DENIED_FEATURES = [
    "accelerometer",
    "autoplay",
    "camera",
    "display-capture",
    "geolocation",
    "gyroscope",
    "hid",
    "idle-detection",
    "magnetometer",
    "microphone",
    "midi",
    "payment",
    "publickey-credentials-get",
    "screen-wake-lock",
    "serial",
    "usb",
    "xr-spatial-tracking",
]

STRICT_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
    "report-uri": [CSP_REPORT_PATH],
    "report-to": ["csp"],
}

STRICT: dict[str, Any] = {
    "csp": STRICT_CSP,
    "hsts_max_age": 31_536_000,
    "hsts_include_subdomains": True,
    "x_frame_options": "DENY",
    # Not no-referrer: with it browsers send `Origin: null` on form posts and CSRF refuses them.
    "referrer_policy": "same-origin",
    "permissions_policy": {feature: [] for feature in DENIED_FEATURES},
    "cross_origin_opener_policy": "same-origin",
    "cross_origin_resource_policy": "same-origin",
    "x_content_type_options_nosniff": True,
    "cache_control": "no-store",
    "x_permitted_cross_domain_policies": "none",
    "reporting_endpoints": {"csp": CSP_REPORT_PATH},
    "remove_headers": ["X-Powered-By"],
}

# OWASP Secure Headers Project's recommended set, except Referrer-Policy (see STRICT).
OWASP: dict[str, Any] = {
    "csp": {
        "default-src": ["'self'"],
        "form-action": ["'self'"],
        "object-src": ["'none'"],
        "frame-ancestors": ["'none'"],
        "upgrade-insecure-requests": [],
    },
    "hsts_max_age": 31_536_000,
    "hsts_include_subdomains": True,
    "x_frame_options": "DENY",
    "referrer_policy": "same-origin",
    "permissions_policy": {feature: [] for feature in DENIED_FEATURES},
    "cross_origin_opener_policy": "same-origin",
    "cross_origin_embedder_policy": "require-corp",
    "cross_origin_resource_policy": "same-origin",
    "x_content_type_options_nosniff": True,
    "cache_control": "no-store, max-age=0",
    "x_permitted_cross_domain_policies": "none",
}

PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "strict": ("Strict (the seeded default)", STRICT),
    "owasp": ("OWASP recommended", OWASP),
}


def admin_inline_style_hashes() -> list[str]:
    """CSP hashes of the inline <style> blocks in Django's admin templates, read from them."""
    template = Path(django.contrib.admin.__file__).parent / "templates/admin/change_list.html"
    blocks = re.findall(r"<style>(.*?)</style>", template.read_text(), re.DOTALL)
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"
        for block in blocks
    ]


def seeded_rules() -> list[dict[str, Any]]:
    """The rules `migrate` seeds and `headers_reset` restores, keyed by their unique names."""
    admin_csp = {**STRICT_CSP, "style-src": ["'self'", *admin_inline_style_hashes()]}
    return [
        {
            "name": "site-wide",
            "description": "Strict headers for every page (A+ on the MDN HTTP Observatory).",
            "match_type": "prefix",
            "path": "/",
            "priority": 100,
            **STRICT,
        },
        {
            "name": "admin",
            "description": "The site-wide CSP plus the hash of the admin's one inline <style>.",
            "match_type": "prefix",
            "path": "/admin/",
            "priority": 200,
            "csp": admin_csp,
        },
        {
            "name": "downloads",
            "description": "Uploaded files are served as inert documents: no scripts, sandboxed.",
            "match_type": "regex",
            "path": r"^/(api/v1/)?uploads/[^/]+/download/?$",
            "priority": 300,
            "csp": {"default-src": ["'none'"], "sandbox": []},
        },
    ]
