"""Errors shared by the command-line front ends."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit code 2."""
