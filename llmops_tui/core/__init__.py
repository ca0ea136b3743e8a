"""Headless domain core. Never imports textual or rich (enforced by import-linter and tests)."""
