"""Exactly-once writes for clients that retry: the ``Idempotency-Key`` header (the bot sends the Matrix
event id of the command), stored with the answer in the same transaction as the write."""
