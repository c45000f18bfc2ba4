"""Runtime support every layer may use: quiet start-up, progress bars, reading file arguments."""
