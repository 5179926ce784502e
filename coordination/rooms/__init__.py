"""Links between Matrix rooms and patients or themes, so the bot knows what a room is about."""
