"""``python -m auditlog``: the same as the ``auditlog`` command."""

from auditlog.cli import main

main()
