"""Patient dossiers: identity under the French identity-vigilance rules (INS), consent, status."""
