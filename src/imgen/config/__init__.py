"""Settings and where they come from: flag > environment > profile > default, each value with
its source; the TOML config file and its edits; the credentials file (0600)."""
