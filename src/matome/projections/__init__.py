"""The read side: views kept up to date from the log, exactly once, and the document queries.

* :mod:`~matome.projections.viewstore` — where the view tables live (SQLite or PostgreSQL);
* :mod:`~matome.projections.runner` — the runner that applies new events to the views;
* :mod:`~matome.projections.documents` — the contract's documents, queried from the views.
"""
