"""The audit trail: every read and write of patient data, append-only."""
