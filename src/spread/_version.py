"""The version of spread-client, written here alone: pyproject.toml reads it
(setuptools' dynamic version, `attr`), and spread.__version__ is this."""

__version__ = "0.1.0"
