"""tasktool: one command line for every Hugging Face Transformers task."""

__version__ = "0.1.0"
