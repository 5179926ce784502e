"""The care circle (cercle de soins) of a patient and the access rule every patient-scoped domain uses."""
