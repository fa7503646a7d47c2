"""Deterministic raw demo data (ride-hailing trips and driver profile updates) for featurekit."""
