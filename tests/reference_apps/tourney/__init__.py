"""Tests of the tournament app (apps/tourney)."""
