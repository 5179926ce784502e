"""The national directory (RPPS / ROR): persons, their activities, structures, and Matrix account bindings."""
