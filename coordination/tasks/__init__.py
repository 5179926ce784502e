"""Tasks: assigned to care-circle members or structures, searchable by status, type, patient, assignee."""
