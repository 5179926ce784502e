"""Schemas shared by every domain: the error body, and who the caller is."""

from __future__ import annotations

from pydantic import BaseModel, Field

from coordination.errors import ErrCode


class FieldError(BaseModel):
    field: str = Field(description="The offending field, dotted for nested ones")
    error: str = Field(description="What is wrong with it, in French")


class ErrorOut(BaseModel):
    """Every error answer: a stable code for programs and a French sentence for people."""

    errcode: ErrCode = Field(examples=[ErrCode.FORBIDDEN])
    error: str = Field(examples=["Vous n'êtes pas membre habilité du cercle de soins de ce patient."])
    fields: list[FieldError] | None = None


class MeOut(BaseModel):
    user_id: str
    national_id: str
    display_name: str
    profession_code: str | None
    structure_ids: list[str]
    via_bot: bool
