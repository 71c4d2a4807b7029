"""User CRUD views, exercised over HTTP against the live (measured) server.

Every test makes its own uid, so tests share one database yet stay independent
of order and of earlier runs.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import requests

from nose2_servercov import ServerTestCase

TOKEN = os.environ.get("SAMPLE_API_TOKEN", "sample-token")


def new_uid() -> str:
    return f"u-{uuid.uuid4().hex}"


class UserViewsTest(ServerTestCase):
    prefix = "0.0"

    def headers(self) -> dict[str, str]:
        return {"X-Auth-Token": TOKEN}

    def create(self, uid: str, username: str = "alice") -> dict[str, Any]:
        response = self.post("users/", json={"uid": uid, "username": username})
        self.assertEqual(response.status_code, 201, response.text)
        return response.json()

    def assert_error(self, response: requests.Response, status: int) -> None:
        self.assertEqual(response.status_code, status, response.text)
        body = response.json()
        self.assertIs(body["success"], False)
        self.assertIsInstance(body["error"], str)

    def test_create_user(self) -> None:
        uid = new_uid()
        body = self.create(uid, "alice")
        self.assertEqual(
            body, {"data": {"uid": uid, "username": "alice"}, "success": True, "status": "created"}
        )

    def test_get_user(self) -> None:
        uid = new_uid()
        self.create(uid, "bob")
        response = self.get(f"users/{uid}/")
        self.assertEqual(response.status_code, 200)
        body = response.json()
        self.assertEqual(body["status"], "get")
        self.assertIs(body["success"], True)
        self.assertEqual(body["data"], {"uid": uid, "username": "bob"})

    def test_list_users(self) -> None:
        uids = {new_uid(), new_uid()}
        for uid in uids:
            self.create(uid)
        response = self.get("/users/")
        self.assertEqual(response.status_code, 200)
        body = response.json()
        self.assertEqual(body["status"], "list")
        listed = {user["uid"] for user in body["data"]}
        self.assertLessEqual(uids, listed)

    def test_update_user(self) -> None:
        uid = new_uid()
        self.create(uid, "carol")
        response = self.put(f"users/{uid}/", json={"username": "caroline"})
        self.assertEqual(response.status_code, 200, response.text)
        self.assertEqual(response.json()["status"], "updated")
        self.assertEqual(self.get(f"users/{uid}/").json()["data"]["username"], "caroline")

    def test_delete_user(self) -> None:
        uid = new_uid()
        self.create(uid)
        response = self.delete(f"users/{uid}/")
        self.assertEqual(response.status_code, 204)
        self.assertEqual(response.content, b"")
        self.assert_error(self.get(f"users/{uid}/"), 404)

    def test_bad_create_body_is_400(self) -> None:
        bodies: list[Any] = [
            {},
            {"uid": new_uid()},
            {"username": "dave"},
            {"uid": "", "username": "dave"},
            {"uid": "has space", "username": "dave"},
            {"uid": 42, "username": "dave"},
            {"uid": new_uid(), "username": "   "},
            ["not", "an", "object"],
        ]
        for body in bodies:
            with self.subTest(body=body):
                self.assert_error(self.post("users/", json=body), 400)
        with self.subTest(body="not json"):
            response = self.post(
                "users/", data="not json", headers={"Content-Type": "application/json"}
            )
            self.assert_error(response, 400)

    def test_bad_update_body_is_400(self) -> None:
        uid = new_uid()
        self.create(uid)
        self.assert_error(self.put(f"users/{uid}/", json={"username": ""}), 400)
        self.assert_error(self.put(f"users/{uid}/", json={}), 400)

    def test_missing_or_wrong_token_is_401(self) -> None:
        for token in ("", "wrong-token"):
            with self.subTest(token=token):
                response = self.get("users/", headers={"X-Auth-Token": token})
                self.assert_error(response, 401)
                response = self.post(
                    "users/",
                    json={"uid": new_uid(), "username": "eve"},
                    headers={"X-Auth-Token": token},
                )
                self.assert_error(response, 401)

    def test_missing_user_is_404(self) -> None:
        uid = new_uid()
        self.assert_error(self.get(f"users/{uid}/"), 404)
        self.assert_error(self.put(f"users/{uid}/", json={"username": "frank"}), 404)
        self.assert_error(self.delete(f"users/{uid}/"), 404)

    def test_duplicate_uid_is_409(self) -> None:
        uid = new_uid()
        self.create(uid, "grace")
        response = self.post("users/", json={"uid": uid, "username": "other"})
        self.assert_error(response, 409)
        self.assertEqual(self.get(f"users/{uid}/").json()["data"]["username"], "grace")

    def test_wrong_method_is_405(self) -> None:
        response = self.patch("users/", json={})
        self.assert_error(response, 405)
        self.assertIn("POST", response.headers["Allow"])
