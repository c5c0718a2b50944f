// Nothing to import: this fixture exists only for its exported symbols.
