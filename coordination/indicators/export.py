"""The CSV answer of the indicators, the same for the API (token) and the dashboard page (cookie)."""

from __future__ import annotations

from fastapi import Response

from coordination.indicators import rules
from coordination.indicators.schemas import IndicatorsOut


def csv_response(ind: IndicatorsOut) -> Response:
    """UTF-8 with BOM, ``;`` separator, French headers, as an attachment named after the DAC and period."""
    return Response(
        content=rules.csv_export(ind).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{rules.csv_filename(ind)}"'},
    )
