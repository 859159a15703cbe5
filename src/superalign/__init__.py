"""superalign: the superalignment agenda as a runnable, measured pipeline."""

__version__ = "0.1.0"
