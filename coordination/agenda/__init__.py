"""Shared agendas: availability, free slots, appointments, booking across the region (issue 11)."""
