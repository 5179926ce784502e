"""FHIR R4 export of a patient's dossier (FR Core-style Patient, CareTeam, Task)."""
