"""AZUREZO coordination service: the single owner of coordination data (directory, dossiers, circle,
documents, requests to DACs, tasks, audit)."""
