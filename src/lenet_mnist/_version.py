"""The package version, kept in one place (read by the build backend and by ``__init__``)."""

__version__ = "0.1.0.dev0"
