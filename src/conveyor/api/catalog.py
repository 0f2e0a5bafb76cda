"""The pipeline catalog: pipelines stored by owner and name, every version kept.

An update adds a version and never rewrites one; a run keeps the snapshot it started with (the
engine stores it by content hash), so neither an update nor a delete changes a run. Names are
unique per owner: two owners may each have a pipeline called `etl`.

A pipeline may be *shared*: every owner then sees it, finds it by name and runs it, and only
its owner (or an admin) changes or deletes it. The examples `conveyor serve --pipelines DIR`
loads are shared, so every key can run `hello`.

Text documents sent over HTTP are parsed here, not by `load_pipeline`: that function reads a
one-line string ending in `.yaml` as a *file path*, which a request must never make the
server do. YAML aliases are refused for the same reason of trust: a few hundred bytes of
nested aliases expand to an exponential document.
"""

from __future__ import annotations

import builtins
import secrets
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from conveyor.api.deps import Principal
from conveyor.backends.local.sql import Q
from conveyor.backends.local.store import Store, dumps, loads
from conveyor.errors import PipelineError, PipelineLoadError
from conveyor.inputs import MAX_DEPTH
from conveyor.pipeline.loading import parse_document, spec_from_document
from conveyor.pipeline.spec import PipelineSpec

if TYPE_CHECKING:
    from conveyor.pipeline.validation import ActionLookup

_SOURCE = "document"


class NameTakenError(Exception):
    """The owner already has a pipeline with that name."""

    def __init__(self, owner: str, name: str) -> None:
        self.owner = owner
        self.name = name
        super().__init__(f"a pipeline named {name!r} already exists")


@dataclass(frozen=True)
class StoredPipeline:
    """A catalog entry; `version` and `document` are of one version (the latest by default)."""

    id: str
    owner: str
    name: str
    latest_version: int
    description: str | None
    created_at: datetime
    updated_at: datetime
    version: int | None = None
    document: dict[str, Any] | None = None
    shared: bool = False


def parse_text(text: str) -> dict[str, Any]:
    """The document in YAML or JSON `text`.

    Raises:
        PipelineLoadError: it does not parse, is not a mapping, or uses YAML aliases.
    """
    if text.lstrip().startswith("{"):
        return parse_document(text, "json", _SOURCE)
    try:
        aliased = _aliased(text)
    except yaml.YAMLError:
        aliased = False  # parse_document below reports the syntax error with its position.
    if aliased:
        raise PipelineLoadError(_SOURCE, "YAML aliases (*name) are not accepted")
    return parse_document(text, "yaml", _SOURCE)


def _aliased(text: str) -> bool:
    """Whether YAML `text` uses an alias, read no deeper than documents may nest.

    Stopping there matters: a document nested 100,000 levels deep took minutes to read
    whole; `parse_document` then refuses it by its depth.
    """
    depth = 0
    for event in yaml.parse(text):
        if isinstance(event, yaml.AliasEvent):
            return True
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return False
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return False


def document_of(source: Mapping[str, Any] | str) -> dict[str, Any]:
    """A document sent as a JSON object or as YAML/JSON text, as a mapping."""
    return parse_text(source) if isinstance(source, str) else dict(source)


class Catalog:
    """Stored pipelines, on the service's connection to the database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, owner: str, spec: PipelineSpec, *, shared: bool = False) -> StoredPipeline:
        """Store `spec` as version 1 of a new pipeline of `owner` (seen by all when `shared`).

        Raises:
            NameTakenError: the owner has a pipeline of that name.
        """
        pipeline_id = secrets.token_hex(16)
        now = time.time()
        try:
            with self.store.transaction() as db:
                db.execute(
                    Q["catalog_insert_pipeline"],
                    {
                        "id": pipeline_id,
                        "owner": owner,
                        "name": spec.name,
                        "description": spec.description,
                        "now": now,
                        "shared": int(shared),
                    },
                )
                db.execute(Q["catalog_insert_version"], (pipeline_id, 1, _dump(spec), now))
        except sqlite3.IntegrityError as exc:
            raise NameTakenError(owner, spec.name) from exc
        found = self.get(pipeline_id)
        assert found is not None
        return found

    def update(self, pipeline_id: str, spec: PipelineSpec) -> StoredPipeline | None:
        """Add `spec` as the next version; None when there is no such pipeline.

        Raises:
            NameTakenError: `spec` renames it to a name its owner already uses.
        """
        now = time.time()
        try:
            with self.store.transaction() as db:
                row = db.execute(Q["catalog_get_pipeline"], (pipeline_id, None)).fetchone()
                if row is None:
                    return None
                version = row["latest_version"] + 1
                db.execute(Q["catalog_insert_version"], (pipeline_id, version, _dump(spec), now))
                db.execute(
                    Q["catalog_bump_version"],
                    {
                        "id": pipeline_id,
                        "version": version,
                        "name": spec.name,
                        "description": spec.description,
                        "now": now,
                    },
                )
        except sqlite3.IntegrityError as exc:
            raise NameTakenError(row["owner"], spec.name) from exc
        return self.get(pipeline_id)

    def get(self, pipeline_id: str, version: int | None = None) -> StoredPipeline | None:
        """One version (the latest when None) of a pipeline, with its document."""
        row = self.store.db.execute(Q["catalog_get_pipeline"], (pipeline_id, version)).fetchone()
        if row is None:
            return None
        return _stored(row, version=row["version"], document=loads(row["document"]))

    def visible_id(self, ref: str, principal: Principal) -> str | None:
        """The id of the pipeline `ref` names for `principal`: an id it may see, else the
        name of one of its own pipelines, else the name of a shared one; None when there is
        none."""
        found = self.get(ref)
        if found is not None and (found.shared or principal.can_see(found.owner)):
            return found.id
        own = self.id_by_name(principal.owner, ref)
        if own is not None:
            return own
        row = self.store.db.execute(Q["catalog_shared_id_by_name"], (ref,)).fetchone()
        return str(row["id"]) if row is not None else None

    def set_shared(self, pipeline_id: str, shared: bool) -> None:
        """Share the pipeline with every owner (read-only), or stop sharing it."""
        with self.store.transaction() as db:
            db.execute(Q["catalog_set_shared"], {"id": pipeline_id, "shared": int(shared)})

    def id_by_name(self, owner: str, name: str) -> str | None:
        """The id of `owner`'s pipeline called `name`."""
        row = self.store.db.execute(Q["catalog_id_by_name"], (owner, name)).fetchone()
        return str(row["id"]) if row is not None else None

    def list(
        self, *, owner: str | None, name: str | None = None, limit: int = 50, offset: int = 0
    ) -> tuple[list[StoredPipeline], int]:
        """Pipelines (without documents) by name, and how many match in all."""
        args = {"owner": owner, "name": name, "limit": limit, "offset": offset}
        rows = self.store.db.execute(Q["catalog_list"], args).fetchall()
        total = self.store.db.execute(Q["catalog_count"], args).fetchone()[0]
        return [_stored(row) for row in rows], int(total)

    def versions(self, pipeline_id: str) -> builtins.list[tuple[int, datetime]]:
        """(version, created_at) of every version, newest first."""
        return [
            (row["version"], _ts(row["created_at"]))
            for row in self.store.db.execute(Q["catalog_versions_of"], (pipeline_id,))
        ]

    def delete(self, pipeline_id: str) -> bool:
        """Delete a pipeline and its versions; False when there was none."""
        with self.store.transaction() as db:
            cursor = db.execute(Q["catalog_delete_pipeline"], (pipeline_id,))
        return cursor.rowcount > 0


def load_directory(
    catalog: Catalog, registry: ActionLookup, directory: Path, owner: str
) -> tuple[builtins.list[str], builtins.list[str]]:
    """Store every ``*.yaml`` pipeline of `directory` for `owner`, shared with every owner.

    A pipeline whose name is new is created; one whose document changed gets a new version;
    an unchanged one is left as it is, so loading the same directory at every start adds
    nothing.

    Returns:
        The names stored or found unchanged, and a problem for each file that was skipped.
    """
    from conveyor.pipeline.validation import validate_pipeline

    loaded: builtins.list[str] = []
    problems: builtins.list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            document = parse_text(path.read_text(encoding="utf-8"))
            report = validate_pipeline(document, registry)
            report.raise_for_errors()
            spec = spec_from_document(document, str(path))
        except (OSError, UnicodeDecodeError, PipelineError) as exc:
            problems.append(f"{path.name}: {exc}")
            continue
        existing = catalog.id_by_name(owner, spec.name)
        if existing is None:
            catalog.create(owner, spec, shared=True)
        else:
            current = catalog.get(existing)
            if current is None or dumps(current.document) != _dump(spec):
                catalog.update(existing, spec)
            if current is None or not current.shared:
                catalog.set_shared(existing, True)
        loaded.append(spec.name)
    return loaded, problems


def _dump(spec: PipelineSpec) -> str:
    # The same form the engine snapshots, so a stored version and its runs read alike.
    return dumps(spec.model_dump(mode="json", exclude_none=True))


def _stored(
    row: sqlite3.Row, *, version: int | None = None, document: dict[str, Any] | None = None
) -> StoredPipeline:
    return StoredPipeline(
        id=row["id"],
        owner=row["owner"],
        name=row["name"],
        latest_version=row["latest_version"],
        description=row["description"],
        created_at=_ts(row["created_at"]),
        updated_at=_ts(row["updated_at"]),
        version=version,
        document=document,
        shared=bool(row["shared"]),
    )


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)
