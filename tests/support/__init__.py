"""Test support: independent checkers, database fixtures, small real fakes."""
