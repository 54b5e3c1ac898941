"""Reports: rich/Markdown/JSON tables and matplotlib figures."""
