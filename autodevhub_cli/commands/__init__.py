"""Typer commands: parse options, call one core function, show the result."""
