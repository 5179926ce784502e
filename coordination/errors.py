"""Errors a caller can see. Every message is French and says what was wrong and what to do."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of the errors that services raise and the app turns into JSON answers."""

    status_code = 400
    errcode = "AZ_BAD_REQUEST"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class NotFound(ServiceError):
    """Unknown id, or an object the caller may not know exists (never a hint beyond that)."""

    status_code = 404
    errcode = "AZ_NOT_FOUND"


class Forbidden(ServiceError):
    status_code = 403
    errcode = "AZ_FORBIDDEN"


class Unauthenticated(ServiceError):
    status_code = 401
    errcode = "AZ_UNAUTHENTICATED"


class Conflict(ServiceError):
    """Version mismatch on a concurrent edit, or a duplicate that must not be created."""

    status_code = 409
    errcode = "AZ_CONFLICT"


class Invalid(ServiceError):
    """Input that parses but breaks a business rule; ``field`` names the culprit."""

    status_code = 422
    errcode = "AZ_INVALID"

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message, **extra)
        self.field = field


class TooLarge(ServiceError):
    status_code = 413
    errcode = "AZ_TOO_LARGE"


class Unavailable(ServiceError):
    """A dependency we need (Synapse) did not answer."""

    status_code = 503
    errcode = "AZ_UNAVAILABLE"
