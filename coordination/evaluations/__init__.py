"""Evaluations of a patient with forms defined as FHIR Questionnaires (AGGIR, mini-Zarit, ...)."""
