"""The autodevhub core: a library with no Typer or Rich in it, for the CLI and Python callers."""
