"""Health and generic-error views: the routes a readiness probe or a typo hits."""

from __future__ import annotations

from nose2_servercov import ServerTestCase


class HealthViewTest(ServerTestCase):
    """No ``headers()`` override: these routes must answer without credentials."""

    prefix = "0.0"

    def test_health_needs_no_token(self) -> None:
        response = self.get("health/")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"status": "ok"})

    def test_unknown_path_is_a_json_404(self) -> None:
        response = self.get("no-such-route/")
        self.assertEqual(response.status_code, 404)
        self.assertEqual(response.headers["Content-Type"], "application/json")
        self.assertIs(response.json()["success"], False)
