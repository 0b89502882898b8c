"""textkit: small, dependable text utilities."""

__version__ = "0.1.0"
