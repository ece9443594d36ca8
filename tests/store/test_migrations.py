"""Alembic migrations: from an empty database to head, matching store/schema.py exactly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from auditlog.errors import ConfigurationError
from auditlog.store.db import (
    create_db_engine,
    current_revision,
    ensure_schema_current,
    head_revision,
    migrations_dir,
    upgrade,
)
from auditlog.store.schema import metadata


def test_upgrade_from_empty_to_head(empty_db_url: str) -> None:
    engine = create_db_engine(empty_db_url)
    try:
        assert current_revision(engine) is None
        head = head_revision()
        with pytest.raises(
            ConfigurationError, match=f"schema is at revision none, .* needs {head}"
        ):
            ensure_schema_current(engine)
        upgrade(empty_db_url, "0001")
        assert current_revision(engine) == "0001"
        # added by revisions 0003_external_anchors and 0004_data_keys
        later = {"cosignatures", "timestamps", "data_keys"}
        assert set(inspect(engine).get_table_names()) == {
            *(set(metadata.tables) - later),
            "alembic_version",
        }
        upgrade(empty_db_url)
        assert current_revision(engine) == head
        ensure_schema_current(engine)
        upgrade(engine)  # at head already: a no-op
        assert set(metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrated_schema_equals_schema_module(migrated_engine) -> None:  # type: ignore[no-untyped-def]
    """The migrations and store/schema.py describe the same tables, columns and indexes.

    Tables that other packages declare in their own MetaData (the auditor API's ``api_keys``)
    are left to their own tests. On tables partitioned by log (``AUDITLOG_TEST_PG_PARTITIONS``),
    the partitions and the per-partition foreign keys PostgreSQL derives from the parent's are
    not part of the schema module.
    """

    def ours(obj, name, type_, reflected, compare_to) -> bool:  # type: ignore[no-untyped-def]
        if type_ == "foreign_key_constraint" and reflected:
            return obj.referred_table.name in metadata.tables
        return not (type_ == "table" and reflected and name not in metadata.tables)

    with migrated_engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": ours}
        )
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_migrations_are_found_in_the_source_tree() -> None:
    assert (migrations_dir() / "versions" / "0001_initial.py").is_file()
