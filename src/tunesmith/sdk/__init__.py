"""The Python SDK: Google's function signatures over an embedded or remote client."""
