"""The package's version, in a module of its own so every layer (the CLI included) can read it."""

__version__ = "0.1.0"
