"""The application layer: it orchestrates and holds no rule.

* :mod:`~matome.application.eventstore` — the eventsourcing adapter (mapper, recorders, store
  settings);
* :mod:`~matome.application.uow` — the unit of work and the state cache;
* :mod:`~matome.application.handlers` — one handler per command (load → decide);
* :mod:`~matome.application.idempotency` — idempotency keys;
* :mod:`~matome.application.service` — the command service (decide → save, retries).
"""
