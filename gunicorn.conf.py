"""gunicorn settings, read from the environment: GUNICORN_BIND, WEB_CONCURRENCY, GUNICORN_TIMEOUT.

gunicorn trusts no proxy header: Django alone decides, from DJANGO_BEHIND_PROXY, whether
X-Forwarded-Proto counts, so gunicorn must never turn it into `wsgi.url_scheme`.
"""

from __future__ import annotations

import multiprocessing

from project.env import env_int, env_str

wsgi_app = "project.wsgi:application"
bind = env_str("GUNICORN_BIND").strip() or "127.0.0.1:8000"
workers = env_int("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1, minimum=1)
timeout = env_int("GUNICORN_TIMEOUT", 60, minimum=1)
# Request lines and header fields are bounded; bodies are bounded by the upload policies.
limit_request_line = 8190
limit_request_fields = 100
# No peer may set the scheme or SCRIPT_NAME/PATH_INFO (not even over a UNIX socket, which gunicorn
# always trusts); the FORWARDED_ALLOW_IPS variable gunicorn reads by itself is overridden here.
forwarded_allow_ips = ""
secure_scheme_headers: dict[str, str] = {}
forwarder_headers = ""
accesslog = "-"
# The default access log format has no query string secrets filter; keep it to the path.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss rid=%({x-request-id}o)s'
