"""One contract, two backends: every migrated endpoint answers alike from Flask and its twin."""
