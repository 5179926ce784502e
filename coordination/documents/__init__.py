"""Patient documents: typed uploads, content-addressed storage, visibility within the care circle."""
