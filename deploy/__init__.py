"""Top-level package of snn-deploy."""
__version__ = "0.1.0"
