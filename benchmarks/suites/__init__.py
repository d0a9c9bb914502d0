"""One module per benchmark suite; each returns a JSON-able dict for the report."""
