"""maskmtl: datasets and multi-task models for attribute prediction on masked faces."""

__version__ = "0.1.0"
