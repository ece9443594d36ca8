"""``python -m auditlog``: the same as the ``auditlog`` command."""

from auditlog.cli import main

if __name__ == "__main__":  # not again in the processes of ``verify --jobs`` (spawned)
    main()
