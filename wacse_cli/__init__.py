"""wacse: cross-lingual sentence encoders for low-resource languages, trained with word alignment."""

__version__ = "0.1.0"
