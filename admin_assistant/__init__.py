"""The `admin-assistant` command line."""
