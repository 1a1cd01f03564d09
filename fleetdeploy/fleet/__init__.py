"""The fleet model: the fleet file's schema, its validation and the files it names (pure data)."""
