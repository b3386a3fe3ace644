"""The migrations build the schema the models describe, on both engines."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from homediag.runtime import Runtime
from homediag.store.models import Base
from homediag.store.partitions import not_a_partition


def test_migrated_schema_matches_the_models(runtime: Runtime) -> None:
    with runtime.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": not_a_partition})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_series_index_exists(runtime: Runtime) -> None:
    from sqlalchemy import inspect

    indexes = {ix["name"]: ix for ix in inspect(runtime.engine).get_indexes("observation")}
    assert "ix_observation_series" in indexes
    assert indexes["ix_observation_series"]["column_names"][:2] == ["patient_key", "code"]
