"""The test suite; a package so that bench/ can import its helpers as ``tests.<module>``."""
