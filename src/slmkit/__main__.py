"""`python -m slmkit` is the `slmkit` command."""

from slmkit.cli.main import main

main()
