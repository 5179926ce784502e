"""Pure rules of the PPCS: item ids, references between items, what carries over between versions."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from coordination.errors import Invalid
from coordination.plans.schemas import PlanIn
from coordination.vocab import OPEN_PLAN_ACTION_STATUSES, PlanActionStatus, parse


def new_id() -> str:
    """A short id for a new problem, objective or action (unique within a plan)."""
    return secrets.token_hex(6)


def _with_ids(items: list[dict[str, Any]], what: str) -> list[dict[str, Any]]:
    seen: set[str] = set()
    for item in items:
        if item.get("id") is None:
            item["id"] = new_id()
        if item["id"] in seen:
            raise Invalid(
                f"Deux {what} ont le même identifiant « {item['id']} » : "
                "laissez l'id vide pour un nouvel élément."
            )
        seen.add(item["id"])
    return items


def build_content(data: PlanIn, previous: Mapping[str, Any] | None) -> dict[str, Any]:
    """The JSON content of the new version: ids given to new items, references checked (an objective's
    problem, an action's objective must be in the plan), each kept action's task link carried over."""
    problems = _with_ids([p.model_dump(mode="json") for p in data.problems], "problèmes")
    objectives = _with_ids([o.model_dump(mode="json") for o in data.objectives], "objectifs")
    actions = _with_ids([a.model_dump(mode="json", exclude={"create_task"}) for a in data.actions], "actions")
    problem_ids = {p["id"] for p in problems}
    for objective in objectives:
        if objective["problem_id"] is not None and objective["problem_id"] not in problem_ids:
            raise Invalid(
                f"L'objectif « {objective['title']} » renvoie à un problème absent du plan : "
                "corrigez problem_id.",
                field="objectives",
            )
    objective_ids = {o["id"] for o in objectives}
    old_tasks = {a["id"]: a.get("task_id") for a in (previous or {}).get("actions", [])}
    for action in actions:
        if action["objective_id"] is not None and action["objective_id"] not in objective_ids:
            raise Invalid(
                f"L'action « {action['title']} » renvoie à un objectif absent du plan : "
                "corrigez objective_id.",
                field="actions",
            )
        action["task_id"] = old_tasks.get(action["id"])
    return {
        "situation": data.situation,
        "patient_wishes": data.patient_wishes,
        "problems": problems,
        "objectives": objectives,
        "actions": actions,
    }


def open_actions(content: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The actions still to do or under way, earliest deadline first (undated last)."""
    found = [
        a
        for a in content.get("actions", [])
        if parse(PlanActionStatus, a["status"]) in OPEN_PLAN_ACTION_STATUSES
    ]
    return sorted(found, key=lambda a: (a.get("deadline") is None, a.get("deadline") or "", a["title"]))
