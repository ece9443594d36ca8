"""The SQL schema of the audit store (SQLAlchemy 2.0 Core), the same on SQLite and PostgreSQL.

The ledger tables (``records``, ``payloads``, ``nodes``, ``checkpoints``) are append-only: the
migrations install triggers that reject UPDATE and DELETE on them (C9), and on PostgreSQL the
writer role is granted INSERT and SELECT only (``store/roles.py``).

Queryable columns of ``records`` (``kind``, ``request_id``, ``req_seq``, ``tenant``, ``ts``) are
copies of fields of the hashed header bytes in ``body``, kept for indexing only; the verifier checks
them against the bytes (C8), so editing an index column to hide a record is caught.

The migration ``migrations/versions/0001_initial.py`` is a frozen copy of this module as it stood
then; ``tests/store/test_migrations.py`` checks that the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "APPEND_ONLY_MESSAGE",
    "HASH_SIZE",
    "LEDGER_TABLES",
    "checkpoints",
    "cosignatures",
    "data_keys",
    "logs",
    "metadata",
    "nodes",
    "payloads",
    "records",
    "signing_keys",
    "timestamps",
]

#: Length in bytes of every stored hash (SHA-256: leaf hashes, node hashes, roots).
HASH_SIZE = 32

#: The message of the error the append-only triggers raise, on SQLite and PostgreSQL alike.
APPEND_ONLY_MESSAGE = "auditlog: ledger tables are append-only"

# Deterministic constraint names, so that later migrations can name what they alter.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# One row per log (one writer, one sequencer, one Merkle tree). `origin` is the checkpoint origin.
logs = Table(
    "logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("origin", String(255), nullable=False, unique=True),
    Column("created", BigInteger, nullable=False),  # ns since the Unix epoch, UTC
)

# One row per record: leaf `seq` of the log's Merkle tree.
records = Table(
    "records",
    metadata,
    Column("log_id", Integer, ForeignKey("logs.id"), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(32), nullable=False),
    Column("request_id", String(255), nullable=True),
    Column("req_seq", BigInteger, nullable=True),
    Column("tenant", String(255), nullable=True),
    Column("ts", BigInteger, nullable=False),  # ns since the Unix epoch, UTC
    # leaf = SHA-256(0x00 || body), RFC 9162 2.1.1; also the record's hash in its request chain.
    Column("leaf", LargeBinary(HASH_SIZE), nullable=False),
    Column("body", LargeBinary, nullable=False),  # canonical header bytes (docs/FORMAT.md)
    CheckConstraint("seq >= 0", name="seq_nonneg"),
    CheckConstraint(f"length(leaf) = {HASH_SIZE}", name="leaf_len"),
    Index(None, "log_id", "request_id", "req_seq"),
    Index(None, "tenant", "ts"),
    Index(None, "kind", "ts"),
)

# Payload bytes (canonical JSON or ciphertext), committed to by the header's `payload` digest.
# A separate table so that an audited erasure procedure can remove content without touching
# the hashed headers (C16).
payloads = Table(
    "payloads",
    metadata,
    Column("log_id", Integer, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("data", LargeBinary, nullable=False),
    ForeignKeyConstraint(["log_id", "seq"], ["records.log_id", "records.seq"]),
)

# Hashes of complete Merkle subtrees at the persisted levels (NODE_LEVEL_STRIDE multiples > 0):
# node (level, idx) covers leaves [idx * 2**level, (idx + 1) * 2**level).
nodes = Table(
    "nodes",
    metadata,
    Column("log_id", Integer, ForeignKey("logs.id"), primary_key=True),
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(HASH_SIZE), nullable=False),
    CheckConstraint("level > 0", name="level_pos"),
    CheckConstraint("idx >= 0", name="idx_nonneg"),
    CheckConstraint(f"length(hash) = {HASH_SIZE}", name="hash_len"),
)

# Signed checkpoints: the C2SP note text as signed, with its size and root for querying.
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("log_id", Integer, ForeignKey("logs.id"), primary_key=True),
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(HASH_SIZE), nullable=False),
    Column("note", Text, nullable=False),
    Column("ts", BigInteger, nullable=False),
    CheckConstraint("size >= 0", name="size_nonneg"),
    CheckConstraint(f"length(root) = {HASH_SIZE}", name="root_len"),
)

# Witness cosignatures (C2SP tlog-cosignature, cosignature/v1) of stored checkpoints: a witness's
# Ed25519 signature over "cosignature/v1", its "time" line and the checkpoint body. `witness` and
# `key_id` are the cosigner's note name and 4-byte key id; `received` is when the log got it.
cosignatures = Table(
    "cosignatures",
    metadata,
    Column("log_id", Integer, primary_key=True),
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("witness", String(255), primary_key=True),
    Column("key_id", String(8), primary_key=True),  # lowercase hex
    Column("timestamp", BigInteger, nullable=False),  # POSIX seconds, as signed
    Column("signature", LargeBinary(64), nullable=False),
    Column("received", BigInteger, nullable=False),  # ns since the Unix epoch, UTC
    ForeignKeyConstraint(["log_id", "size"], ["checkpoints.log_id", "checkpoints.size"]),
    CheckConstraint("timestamp >= 0", name="timestamp_nonneg"),
    CheckConstraint("length(signature) = 64", name="signature_len"),
)

# RFC 3161 timestamp responses (DER TimeStampResp) over SHA-256 of a stored checkpoint's note,
# from a timestamp authority; `gen_time` is the token's genTime (ns since the Unix epoch, UTC).
timestamps = Table(
    "timestamps",
    metadata,
    Column("log_id", Integer, primary_key=True),
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("response", LargeBinary, nullable=False),
    Column("gen_time", BigInteger, nullable=False),
    Column("received", BigInteger, nullable=False),
    ForeignKeyConstraint(["log_id", "size"], ["checkpoints.log_id", "checkpoints.size"]),
)

# Public keys that signed (or sign) a log's checkpoints, kept for the whole retention period (C12).
# Not a ledger table: `retired` is set once when a key is rotated out.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("log_id", Integer, ForeignKey("logs.id"), primary_key=True),
    Column("key_name", String(255), primary_key=True),
    Column("key_id", String(8), primary_key=True),  # 4-byte C2SP key id, lowercase hex
    Column("verifier_key", Text, nullable=False),  # <name>+<hex key id>+<base64(0x01 || pub)>
    Column("created", BigInteger, nullable=False),
    Column("retired", BigInteger, nullable=True),
)

# Wrapped per-request data keys of sealed payloads (C16). Not a ledger table: deleting a row is
# crypto-shredding (C16), done only by `auditlog erase` after it appends a signed erasure record.
# `wrapped` is the data key wrapped by the tenant's KEK (which never enters the database);
# the request's `request.start` header commits to SHA-256(wrapped) (docs/FORMAT.md 3.4).
data_keys = Table(
    "data_keys",
    metadata,
    Column("log_id", Integer, ForeignKey("logs.id"), primary_key=True),
    Column("request_id", String(255), primary_key=True),
    Column("tenant", String(255), nullable=False),
    Column("kek_id", String(300), nullable=False),
    Column("wrapped", LargeBinary, nullable=False),
)

#: The tables the append-only triggers protect (C9).
LEDGER_TABLES: tuple[str, ...] = (
    "records",
    "payloads",
    "nodes",
    "checkpoints",
    "cosignatures",
    "timestamps",
)
