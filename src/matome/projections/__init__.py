"""The read side: views kept up to date from the log, exactly once, and the document queries.

* :mod:`~matome.projections.tables` — how a view table is declared (one declaration gives its
  DDL, its statements and its typed row) and its row changes as data;
* :mod:`~matome.projections.views` — the view tables, and what each event changes in them
  (pure ``when`` functions keyed by event class; the topics handled and ignored);
* :mod:`~matome.projections.viewstore` — where the view tables live (SQLite or PostgreSQL);
* :mod:`~matome.projections.runner` — the runner that applies new events to the views;
* :mod:`~matome.projections.memory` — the same functions on a few streams, in memory (audit);
* :mod:`~matome.projections.bills` — one line's charges and bill composed from view rows;
* :mod:`~matome.projections.documents` — the contract's documents, queried from the views.
"""
