"""The errors every layer shares (a leaf: imports nothing). Each is printed as one line by the CLI."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad value in a configuration: the message names it and what is allowed."""


class CorruptFile(ConfigError):
    """A file that exists but cannot be read back (truncated, not JSON, wrong shape)."""


class CliError(Exception):
    """A user error on the command line: printed as one line, exit code 2."""


class StudyError(ConfigError):
    """A user-facing study error: one line, exit code 2."""


class Interrupted(Exception):
    """A study stopped by Ctrl-C or with an unfinished experiment: it is resumable."""
