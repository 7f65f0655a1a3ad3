"""The `slmkit` command line: parse, call one function, print."""
