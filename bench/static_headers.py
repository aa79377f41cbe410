"""A baseline for the header benchmark: the seeded rules' headers, fixed at start-up.

It sends exactly what RuleHeadersMiddleware sends for the benchmark's path, with no rule
machinery, so `rules / same headers, fixed` isolates what resolving the rules costs.
"""

from __future__ import annotations

from policies.headers import RuleSet


class FixedHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.headers = RuleSet.load().resolve("testserver", "/bench/").over_https

    def __call__(self, request):
        response = self.get_response(request)
        response.headers._store.update(self.headers)
        return response
