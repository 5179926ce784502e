"""Issue 6 item 15: every 4xx text a professional can read is French, and names nothing meaningless.

Two nets: the error catalogue (every message literal the service raises, read from the source, and
every OpenAPI error example and description), and the framework's own answers (pydantic's choices,
a body that is not JSON, a missing body).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

import coordination
from coordination.app import _french_validation_message
from tests.support.service import FakeTokens, add_professional

# English words that have no French homograph a message would use.
ENGLISH = re.compile(
    r"\b(the|or|and|is|are|not|please|invalid|must|should|field|required|error|value|found|missing|"
    r"request|body|input|unknown|expected|cannot|can't|too|large|disabled|forbidden)\b"
)
_SQL = re.compile(r"^(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|WITH|PRAGMA)\b")
ERROR_CLASSES = {
    "ServiceError",
    "NotFound",
    "Forbidden",
    "Unauthenticated",
    "Conflict",
    "Invalid",
    "TooLarge",
    "Unavailable",
    "DuplicateSuspected",
}


def _text(node: ast.expr) -> str | None:
    """The literal text of a message argument (f-string placeholders dropped)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        )
    if isinstance(node, ast.BinOp):  # implicit concatenation split over lines with "+"
        left, right = _text(node.left), _text(node.right)
        return (left or "") + (right or "") if left or right else None
    return None


def _catalogue() -> list[tuple[str, str]]:
    """(where, message) for every message the service raises or keeps as a module constant."""
    found: list[tuple[str, str]] = []
    root = Path(coordination.__file__).parent
    for path in sorted(root.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args:
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                if name in ERROR_CLASSES and (text := _text(node.args[0])):
                    found.append((f"{path.relative_to(root)}:{node.lineno}", text))
            elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                target = node.targets[0].id
                text = _text(node.value)
                if target.isupper() and text and " " in text and text[:1].isupper() and not _SQL.match(text):
                    found.append((f"{path.relative_to(root)}:{node.lineno}", text))
    return found


def test_the_error_catalogue_is_french() -> None:
    catalogue = _catalogue()
    assert len(catalogue) > 50  # the scan really reads the service's messages
    english = [(where, msg) for where, msg in catalogue if ENGLISH.search(msg.lower())]
    assert english == [], "English in messages a professional reads:\n" + "\n".join(
        f"{w}: {m}" for w, m in english
    )


def test_openapi_error_examples_and_descriptions_are_french(client_app_schema: dict[str, Any]) -> None:
    texts: list[str] = []
    for path_item in client_app_schema["paths"].values():
        for operation in path_item.values():
            for code, answer in operation.get("responses", {}).items():
                if code.startswith("4") or code.startswith("5"):
                    texts.append(answer.get("description", ""))
    error_schema = client_app_schema["components"]["schemas"]["ErrorOut"]
    texts += [str(e) for e in error_schema["properties"]["error"].get("examples", [])]
    english = sorted({t for t in texts if ENGLISH.search(t.lower())})
    assert english == []


@pytest.fixture
def client_app_schema(client: httpx.AsyncClient) -> dict[str, Any]:
    app = client._transport.app  # type: ignore[attr-defined]
    return dict(app.openapi())


@pytest.mark.parametrize(
    ("kind", "ctx"),
    [
        ("missing", {}),
        ("string_too_short", {"min_length": 1}),
        ("string_too_long", {"max_length": 10}),
        ("enum", {"expected": "'a', 'b' or 'c'"}),
        ("literal_error", {"expected": "'F', 'M' or 'I'"}),
        ("json_invalid", {}),
        ("model_attributes_type", {}),
        ("date_parsing", {}),
        ("uuid_parsing", {}),
        ("some_future_pydantic_kind", {}),
    ],
)
def test_validation_messages_are_french(kind: str, ctx: dict[str, Any]) -> None:
    message = _french_validation_message({"type": kind, "ctx": ctx, "loc": ("body", "x"), "msg": "English"})
    assert not ENGLISH.search(message.lower()), message


async def test_framework_answers_name_the_body_not_a_byte_offset(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    pro = await add_professional(db, tokens, localpart="msg", national_id="810000000143")
    json_headers = {**pro.headers, "Content-Type": "application/json"}
    not_json = await client.post("/api/v1/patients", content=b"not json", headers=json_headers)
    empty = await client.post("/api/v1/patients", headers=pro.headers)
    not_object = await client.post("/api/v1/patients", content=b"[1]", headers=json_headers)
    bad_choice = await client.post(
        "/api/v1/patients",
        json={
            "birth_name": "X",
            "birth_first_names": ["A"],
            "birth_date": "2000-01-01",
            "sex": "Z",
            "birth_place_code": "06088",
        },
        headers=pro.headers,
    )
    for resp in (not_json, empty, not_object, bad_choice):
        assert resp.status_code == 422, resp.text
        body = resp.json()
        assert not ENGLISH.search(body["error"].lower()), body
        for field in body["fields"]:
            assert field["field"] not in ("0", "requête", ""), body
            assert not re.fullmatch(r"\d+", field["field"]), body
    assert "ou 'I'" in bad_choice.json()["error"]
    assert not_json.json()["fields"][0]["field"] == "corps"
