"""The application layer: it orchestrates and holds no rule.

* :mod:`~matome.application.eventstore` — the eventsourcing adapter: the application that
  records matome's events, and its wiring; split, the way eventsourcing splits its
  persistence, into one module per job — ``_mapper`` (events to stored events), ``_vault``
  (personal data kept apart), ``_keyring`` (crypto-shredding), ``_chains`` (the hash chains),
  ``_recorder`` (what every recorder adds), ``_popo``, ``_sqlite``, ``_postgres`` (one per
  backend), ``_gate`` (the writers' gate), ``_settings`` (store settings), ``_errors`` (store
  failures as matome's errors), ``_meta`` (which matome may write to a store);
* :mod:`~matome.application.uow` — the unit of work and the state cache;
* :mod:`~matome.application.handlers` — one handler per command (load → decide);
* :mod:`~matome.application.idempotency` — idempotency keys;
* :mod:`~matome.application.service` — the command service (decide → save, retries).
"""
