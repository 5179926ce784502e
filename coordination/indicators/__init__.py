"""DAC indicators: a DAC's activity in figures (SQL aggregates), SVG charts, CSV export."""
