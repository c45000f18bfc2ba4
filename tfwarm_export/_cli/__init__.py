"""Command-line plumbing shared by ``tfwarm`` and ``tfwarm bench``: flags, file arguments, quiet start-up, progress bars."""
