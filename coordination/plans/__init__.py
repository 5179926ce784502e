"""The patient's personalised coordination plan (PPCS): one living, versioned plan per patient."""
