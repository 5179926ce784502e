"""The patient's synthesis text: one living text per dossier, every version kept (``!synthese``)."""
