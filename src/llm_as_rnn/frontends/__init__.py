"""Front ends over the core: the command line, the online API, terminal and HTML views."""
