"""Imports of the national directory (RPPS extract, ROR / Annuaire Santé FHIR) into the coordination DB.

Entry points: :func:`ror_sync.importer.import_rpps` and :func:`ror_sync.importer.import_fhir`.
"""
