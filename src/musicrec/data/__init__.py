"""Data: the KKBox schema, loading and validation, id encoding, splits, synthetic data."""
