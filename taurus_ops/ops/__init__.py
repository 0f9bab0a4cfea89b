"""One module per job: cleanup, backup, doctor, export, templates, stats, search, schedule."""
