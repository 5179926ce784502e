"""Requests to a DAC (Dispositif d'Appui à la Coordination), in three steps, with a status lifecycle."""
