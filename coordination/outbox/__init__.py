"""The durable outbox: events someone should hear about, read by the bot from a cursor."""
