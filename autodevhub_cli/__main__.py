"""`python -m autodevhub_cli` runs the CLI."""

from autodevhub_cli.entry import main

main()
