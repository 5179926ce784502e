"""Contact fields typed by people: e-mail addresses and phone numbers, checked by maintained libraries.

- ``Email``: pydantic's ``EmailStr`` (the ``email-validator`` library: syntax, length, IDNA); the domain
  is normalised to lower case by that library.
- ``Phone``: ``pydantic_extra_types``' phone numbers (Google's ``phonenumbers``): a number without a
  country code is read as French (``04 93 00 00 00``), another country needs its ``+`` prefix; stored
  in E.164 (``+33493000000``) so one number has one spelling.

Both libraries word their refusals in English: the wrappers below replace them with French ones.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import EmailStr, StringConstraints, ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_extra_types.phone_numbers import PhoneNumberValidator


def _in_french(message: str) -> WrapValidator:
    def validate(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            if any(e["type"] in ("string_type", "string_too_long") for e in exc.errors()):
                raise
            raise ValueError(message) from None

    return WrapValidator(validate)


Email = Annotated[
    EmailStr,
    StringConstraints(max_length=254),
    _in_french("adresse e-mail invalide : attendu nom@domaine.fr"),
]
Phone = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=40),
    PhoneNumberValidator(default_region="FR", number_format="E164"),
    _in_french(
        "numéro de téléphone invalide : attendu un numéro français (04 93 00 00 00) ou un numéro "
        "étranger avec son indicatif (+44 20 7946 0958)"
    ),
]
