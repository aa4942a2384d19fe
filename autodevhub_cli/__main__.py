"""`python -m autodevhub_cli` runs the CLI."""

from autodevhub_cli.main import main

main()
