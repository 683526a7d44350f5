"""Where the stores are and how backup sets are kept: environment variables, validated once.

The servers' addresses are the ones the services read (``KGLAB_POSTGRES_URL`` and the rest);
what to back up on them, where sets go and how they are encrypted are ``KGLAB_BACKUP_*``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Folders under the embedded data directory that hold no store (servers, builds, backups).
NOT_EMBEDDED_DATA = frozenset(
    {"servers", "backups", "bin", "build", "cache", "stack", "containers"}
)


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class BackupSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KGLAB_BACKUP_", extra="ignore", frozen=True, populate_by_name=True
    )

    #: Where sets are written, one folder per set (``kglab-YYYYMMDDTHHMMSSZ``).
    dir: Path = Path(".kglab/backups")
    postgres_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KGLAB_BACKUP_POSTGRES_URL", "KGLAB_POSTGRES_URL"),
    )
    #: Databases on that server (compose and the chart: one per service with relational data).
    postgres_databases: str = "auth,ingestion"
    #: Also a base backup of the whole cluster (pg_basebackup, with the WAL it needs): the
    #: starting point of a point-in-time restore from the WAL archive (docs/runbook.md). Needs
    #: a role with REPLICATION; off by default, on where the server archives its WAL.
    postgres_base_backup: bool = False
    mongo_url: str | None = Field(
        default=None, validation_alias=AliasChoices("KGLAB_BACKUP_MONGO_URL", "KGLAB_MONGO_URL")
    )
    #: The document service's and ingestion's databases (ingestion's holds the raw files).
    mongo_databases: str = "kglab_documents,kglab_ingestion"
    neo4j_url: str | None = Field(
        default=None, validation_alias=AliasChoices("KGLAB_BACKUP_NEO4J_URL", "KGLAB_NEO4J_URL")
    )
    neo4j_database: str = "neo4j"
    #: Only these owners' nodes (comma-separated user ids); empty: the whole graph. Neo4j
    #: Community has one database, so a set scoped to some owners is how the drill shares it.
    neo4j_owners: str = ""
    qdrant_url: str | None = Field(
        default=None, validation_alias=AliasChoices("KGLAB_BACKUP_QDRANT_URL", "KGLAB_QDRANT_URL")
    )
    qdrant_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("KGLAB_BACKUP_QDRANT_API_KEY", "KGLAB_VECTOR_QDRANT_API_KEY"),
    )
    #: Qdrant's local mode (no server): its folder, copied while the vector service is stopped.
    qdrant_path: Path | None = None
    rabbitmq_management_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "KGLAB_BACKUP_RABBITMQ_MANAGEMENT_URL", "KGLAB_RABBITMQ_MANAGEMENT_URL"
        ),
    )
    rabbitmq_vhost: str = "/"
    #: Embedded stores (``make dev``): their folder, used when no server URL is set.
    data_dir: Path = Field(
        default=Path(".kglab"),
        validation_alias=AliasChoices("KGLAB_BACKUP_DATA_DIR", "KGLAB_DATA_DIR"),
    )
    #: age public keys (``age1...``, comma-separated) sets are encrypted to. A backup needs only
    #: these; a restore needs the identity below.
    recipients: str = ""
    #: The age identity (``AGE-SECRET-KEY-1...``) that decrypts sets, or a file holding it.
    identity: SecretStr | None = None
    identity_file: Path = Path.home() / ".config" / "kglab" / "backup-identity.txt"
    #: Retention: every set of the last ``keep_hours`` hours, and the newest set of each of the
    #: last ``keep_daily`` days.
    keep_daily: int = Field(default=30, ge=1, le=3650)
    keep_hours: int = Field(default=24, ge=0, le=24 * 31)

    @property
    def postgres_database_names(self) -> list[str]:
        return _names(self.postgres_databases)

    @property
    def mongo_database_names(self) -> list[str]:
        return _names(self.mongo_databases)

    @property
    def neo4j_owner_ids(self) -> list[str]:
        return _names(self.neo4j_owners)

    @property
    def recipient_keys(self) -> list[str]:
        return _names(self.recipients)

    @property
    def uses_servers(self) -> bool:
        return any((self.postgres_url, self.mongo_url, self.neo4j_url, self.qdrant_url))


def stack_settings(name: str, repo_root: Path) -> dict[str, str]:
    """The ``KGLAB_BACKUP_*`` values naming ``make stack``'s own data (``--stack NAME``):
    its databases, virtual host and the vector service's local Qdrant folder
    (deploy/stack/topology.py names them the same way)."""
    return {
        "postgres_databases": f"{name}_auth,{name}_ingestion",
        "mongo_databases": f"{name}_documents,{name}_ingestion",
        "rabbitmq_vhost": name,
        "qdrant_path": str(repo_root / ".kglab" / "stack" / name / "data" / "vector" / "qdrant"),
    }
