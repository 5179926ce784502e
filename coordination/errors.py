"""Errors a caller can see. Every message is French and says what was wrong and what to do."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrCode(StrEnum):
    """Every ``errcode`` the service answers: stable, for programs (the bot, the dashboard, scripts).

    Listed in the OpenAPI schema (``ErrorOut.errcode``). Add a member here, never a string literal.
    """

    ALREADY_ACTIVE = "AZ_ALREADY_ACTIVE"
    """The patient's follow-up is already active."""
    ALREADY_BOUND = "AZ_ALREADY_BOUND"
    """This Matrix account or professional is already bound."""
    ALREADY_DISCHARGED = "AZ_ALREADY_DISCHARGED"
    """The patient already left the follow-up."""
    ALREADY_MEMBER = "AZ_ALREADY_MEMBER"
    """Already a member of the care circle."""
    ALREADY_SIGNED = "AZ_ALREADY_SIGNED"
    """A signed evaluation cannot change any more."""
    BAD_REQUEST = "AZ_BAD_REQUEST"
    """Unreadable request."""
    BAD_TRANSITION = "AZ_BAD_TRANSITION"
    """This step is not allowed from the object's current status."""
    BODY_TOO_LARGE = "AZ_BODY_TOO_LARGE"
    """Request body over the size limit, refused before it was read."""
    BOT_ONLY = "AZ_BOT_ONLY"
    """Reserved to the coordination bot."""
    BOOKING_REFUSED = "AZ_BOOKING_REFUSED"
    """This agenda does not take bookings from the caller."""
    BUSY = "AZ_BUSY"
    """The database is busy (e.g. a directory import): retry after Retry-After."""
    CONFLICT = "AZ_CONFLICT"
    """Conflict."""
    CONTENT_MISSING = "AZ_CONTENT_MISSING"
    """The document's content is missing from the store."""
    CSRF = "AZ_CSRF"
    """A dashboard form without the session's anti-forgery token (or sent from another site)."""
    DUPLICATE_SUSPECTED = "AZ_DUPLICATE_SUSPECTED"
    """A dossier with the same identity traits exists (candidates given)."""
    FORBIDDEN = "AZ_FORBIDDEN"
    """Access refused."""
    IDEMPOTENCY_MISMATCH = "AZ_IDEMPOTENCY_MISMATCH"
    """This Idempotency-Key was already used for another write."""
    INACTIVE = "AZ_INACTIVE"
    """The professional is no longer active in the directory."""
    INS_EXISTS = "AZ_INS_EXISTS"
    """A dossier with this INS number exists."""
    INTERNAL = "AZ_INTERNAL"
    """Internal error; nothing was saved."""
    INVALID = "AZ_INVALID"
    """Invalid input (fields listed)."""
    LAST_AUTHORISED = "AZ_LAST_AUTHORISED"
    """The last authorised member of the circle cannot be removed."""
    LINK_EXPIRED = "AZ_LINK_EXPIRED"
    """The activation link is unknown, already used or past its 72 hours."""
    METHOD_NOT_ALLOWED = "AZ_METHOD_NOT_ALLOWED"
    """HTTP method not allowed here."""
    NOT_AGENDA_MANAGER = "AZ_NOT_AGENDA_MANAGER"
    """Only the agenda's owner or delegates may do this."""
    NOT_BOUND = "AZ_NOT_BOUND"
    """No directory identity bound to this Matrix ID."""
    NOT_DAC_COORDINATOR = "AZ_NOT_DAC_COORDINATOR"
    """Not a coordinator of the DAC."""
    NOT_FOUND = "AZ_NOT_FOUND"
    """Unknown object or address."""
    NOT_IN_CIRCLE = "AZ_NOT_IN_CIRCLE"
    """Not an authorised member of the patient's care circle."""
    NOT_IN_DIRECTORY = "AZ_NOT_IN_DIRECTORY"
    """The Matrix account is bound to no directory professional."""
    NOT_REQUESTER = "AZ_NOT_REQUESTER"
    """Only the requester may do this."""
    NOT_TASK_PARTY = "AZ_NOT_TASK_PARTY"
    """Neither the task's author nor one of its assignees."""
    NOT_UPLOADER = "AZ_NOT_UPLOADER"
    """Only the document's author may do this."""
    NOT_YOUR_STRUCTURE = "AZ_NOT_YOUR_STRUCTURE"
    """The caller does not work at this structure."""
    NO_CONSENT = "AZ_NO_CONSENT"
    """The patient's consent to sharing is not recorded."""
    ON_BEHALF_REFUSED = "AZ_ON_BEHALF_REFUSED"
    """Only the bot may act on behalf of someone."""
    OWN_REQUEST = "AZ_OWN_REQUEST"
    """A DAC coordinator may not take or answer a request they created."""
    ROOM_TAKEN = "AZ_ROOM_TAKEN"
    """The room is already linked."""
    SIGNUP_MISMATCH = "AZ_SIGNUP_MISMATCH"
    """The sign-up form does not match an active directory professional (same answer for every case)."""
    SLOT_NOT_OPEN = "AZ_SLOT_NOT_OPEN"
    """The time asked is outside the agenda's opening hours for this event type."""
    SLOT_TAKEN = "AZ_SLOT_TAKEN"
    """The slot was booked by someone else (next free slots given)."""
    STALE_VERSION = "AZ_STALE_VERSION"
    """The object changed since it was read: reload and retry."""
    TOO_LARGE = "AZ_TOO_LARGE"
    """Content over the size limit."""
    UNAUTHENTICATED = "AZ_UNAUTHENTICATED"
    """Missing, invalid or expired Matrix token."""
    UNAVAILABLE = "AZ_UNAVAILABLE"
    """A dependency (Synapse) did not answer."""
    UNKNOWN_AGENDA = "AZ_UNKNOWN_AGENDA"
    """Unknown agenda, or not visible to the caller."""
    UNKNOWN_APPOINTMENT = "AZ_UNKNOWN_APPOINTMENT"
    """Unknown appointment, or not visible to the caller."""
    UNKNOWN_DOCUMENT = "AZ_UNKNOWN_DOCUMENT"
    """Unknown document."""
    UNKNOWN_FORM = "AZ_UNKNOWN_FORM"
    """Unknown evaluation form."""
    UNKNOWN_MEMBER = "AZ_UNKNOWN_MEMBER"
    """Unknown circle member."""
    UNKNOWN_PATIENT = "AZ_UNKNOWN_PATIENT"
    """Unknown patient."""
    UNKNOWN_REQUEST = "AZ_UNKNOWN_REQUEST"
    """Unknown DAC request."""
    UNKNOWN_ROOM = "AZ_UNKNOWN_ROOM"
    """Unknown room."""
    UNSUPPORTED_MEDIA_TYPE = "AZ_UNSUPPORTED_MEDIA_TYPE"
    """Unsupported request content type."""
    UNSUPPORTED_TYPE = "AZ_UNSUPPORTED_TYPE"
    """File type refused."""
    WEAK_PASSWORD = "AZ_WEAK_PASSWORD"
    """The password chosen at activation is too easy to guess."""


class ServiceError(Exception):
    """Base of the errors that services raise and the app turns into JSON answers."""

    status_code = 400
    errcode: ErrCode = ErrCode.BAD_REQUEST

    def __init__(self, message: str, *, errcode: ErrCode | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if errcode is not None:
            self.errcode = errcode
        self.extra = extra


class NotFound(ServiceError):
    """Unknown id, or an object the caller may not know exists (never a hint beyond that)."""

    status_code = 404
    errcode = ErrCode.NOT_FOUND


class Forbidden(ServiceError):
    status_code = 403
    errcode = ErrCode.FORBIDDEN


class Unauthenticated(ServiceError):
    status_code = 401
    errcode = ErrCode.UNAUTHENTICATED


class Conflict(ServiceError):
    """Version mismatch on a concurrent edit, or a duplicate that must not be created."""

    status_code = 409
    errcode = ErrCode.CONFLICT


class Invalid(ServiceError):
    """Input that parses but breaks a business rule; ``field`` names the culprit."""

    status_code = 422
    errcode = ErrCode.INVALID

    def __init__(
        self, message: str, *, field: str | None = None, errcode: ErrCode | None = None, **extra: Any
    ) -> None:
        super().__init__(message, errcode=errcode, **extra)
        self.field = field


class TooLarge(ServiceError):
    status_code = 413
    errcode = ErrCode.TOO_LARGE


class Unavailable(ServiceError):
    """A dependency we need (Synapse) did not answer."""

    status_code = 503
    errcode = ErrCode.UNAVAILABLE
