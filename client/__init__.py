"""The status monitor: probes the status server and logs what it finds."""

__version__ = "1.0.0"
