"""chipwatch: a multilingual news watch on chip export controls."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/chipwatch/chipwatch"
USER_AGENT = f"chipwatch/{__version__} (+{PROJECT_URL})"
