"""Flight SQL commands and action requests as plain Python values.

Handlers see these frozen dataclasses, never protobuf: :mod:`flightsql.protocol.codec`
turns the bytes a client sends into them, and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

SessionValue: TypeAlias = str | bool | int | float | tuple[str, ...] | None



# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class CommandStatementQuery:
    """Run an ad-hoc SQL query (GetFlightInfo / GetSchema)."""

    name: ClassVar[str] = "CommandStatementQuery"
    query: str
    transaction_id: bytes | None = None


@dataclass(frozen=True, slots=True)
class CommandStatementUpdate:
    """Run an ad-hoc SQL update (DoPut)."""

    name: ClassVar[str] = "CommandStatementUpdate"
    query: str
    transaction_id: bytes | None = None


@dataclass(frozen=True, slots=True)
class CommandStatementIngest:
    """Load the DoPut stream into a table.

    ``if_not_exist`` is one of "unspecified", "create", "fail"; ``if_exists`` one of
    "unspecified", "fail", "append", "replace".
    """

    name: ClassVar[str] = "CommandStatementIngest"
    table: str
    schema: str | None = None
    catalog: str | None = None
    temporary: bool = False
    if_not_exist: str = "unspecified"
    if_exists: str = "unspecified"
    transaction_id: bytes | None = None
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommandStatementSubstraitPlan:
    """Run a serialized Substrait plan."""

    name: ClassVar[str] = "CommandStatementSubstraitPlan"
    plan: bytes
    version: str = ""


@dataclass(frozen=True, slots=True)
class CommandPreparedStatementQuery:
    """Execute (GetFlightInfo), describe (GetSchema) or bind (DoPut) a prepared query."""

    name: ClassVar[str] = "CommandPreparedStatementQuery"
    handle: bytes


@dataclass(frozen=True, slots=True)
class CommandPreparedStatementUpdate:
    """Execute a prepared update with the DoPut stream as parameters."""

    name: ClassVar[str] = "CommandPreparedStatementUpdate"
    handle: bytes


@dataclass(frozen=True, slots=True)
class TicketStatementQuery:
    """Ticket of a statement's result stream (DoGet)."""

    name: ClassVar[str] = "TicketStatementQuery"
    handle: bytes


@dataclass(frozen=True, slots=True)
class CommandGetCatalogs:
    """List catalogs."""

    name: ClassVar[str] = "CommandGetCatalogs"


@dataclass(frozen=True, slots=True)
class CommandGetDbSchemas:
    """List database schemas, optionally filtered."""

    name: ClassVar[str] = "CommandGetDbSchemas"
    catalog: str | None = None
    db_schema_filter_pattern: str | None = None


@dataclass(frozen=True, slots=True)
class CommandGetTables:
    """List tables, optionally filtered, optionally with their Arrow schemas."""

    name: ClassVar[str] = "CommandGetTables"
    catalog: str | None = None
    db_schema_filter_pattern: str | None = None
    table_name_filter_pattern: str | None = None
    table_types: tuple[str, ...] = ()
    include_schema: bool = False


@dataclass(frozen=True, slots=True)
class CommandGetTableTypes:
    """List table types."""

    name: ClassVar[str] = "CommandGetTableTypes"


@dataclass(frozen=True, slots=True)
class CommandGetSqlInfo:
    """Server metadata; an empty ``info`` asks for every id the server knows."""

    name: ClassVar[str] = "CommandGetSqlInfo"
    info: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CommandGetXdbcTypeInfo:
    """Type information for one XDBC data type, or all when ``data_type`` is None."""

    name: ClassVar[str] = "CommandGetXdbcTypeInfo"
    data_type: int | None = None


@dataclass(frozen=True, slots=True)
class CommandGetPrimaryKeys:
    """Primary key columns of a table."""

    name: ClassVar[str] = "CommandGetPrimaryKeys"
    catalog: str | None
    db_schema: str | None
    table: str


@dataclass(frozen=True, slots=True)
class CommandGetExportedKeys:
    """Foreign keys that reference a table's primary key."""

    name: ClassVar[str] = "CommandGetExportedKeys"
    catalog: str | None
    db_schema: str | None
    table: str


@dataclass(frozen=True, slots=True)
class CommandGetImportedKeys:
    """Foreign keys of a table."""

    name: ClassVar[str] = "CommandGetImportedKeys"
    catalog: str | None
    db_schema: str | None
    table: str


@dataclass(frozen=True, slots=True)
class CommandGetCrossReference:
    """Foreign keys of the fk table that reference the pk table."""

    name: ClassVar[str] = "CommandGetCrossReference"
    pk_catalog: str | None
    pk_db_schema: str | None
    pk_table: str
    fk_catalog: str | None
    fk_db_schema: str | None
    fk_table: str


Command: TypeAlias = (
    CommandStatementQuery
    | CommandStatementUpdate
    | CommandStatementIngest
    | CommandStatementSubstraitPlan
    | CommandPreparedStatementQuery
    | CommandPreparedStatementUpdate
    | TicketStatementQuery
    | CommandGetCatalogs
    | CommandGetDbSchemas
    | CommandGetTables
    | CommandGetTableTypes
    | CommandGetSqlInfo
    | CommandGetXdbcTypeInfo
    | CommandGetPrimaryKeys
    | CommandGetExportedKeys
    | CommandGetImportedKeys
    | CommandGetCrossReference
)


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class CreatePreparedStatement:
    """Prepare a SQL statement."""

    name: ClassVar[str] = "ActionCreatePreparedStatementRequest"
    action_type: ClassVar[str] = "CreatePreparedStatement"
    query: str
    transaction_id: bytes | None = None


@dataclass(frozen=True, slots=True)
class ClosePreparedStatement:
    """Release a prepared statement."""

    name: ClassVar[str] = "ActionClosePreparedStatementRequest"
    action_type: ClassVar[str] = "ClosePreparedStatement"
    handle: bytes


@dataclass(frozen=True, slots=True)
class CreatePreparedSubstraitPlan:
    """Prepare a serialized Substrait plan."""

    name: ClassVar[str] = "ActionCreatePreparedSubstraitPlanRequest"
    action_type: ClassVar[str] = "CreatePreparedSubstraitPlan"
    plan: bytes


@dataclass(frozen=True, slots=True)
class BeginTransaction:
    """Open a transaction."""

    name: ClassVar[str] = "ActionBeginTransactionRequest"
    action_type: ClassVar[str] = "BeginTransaction"


@dataclass(frozen=True, slots=True)
class EndTransaction:
    """Finish a transaction; ``action`` is "unspecified", "commit" or "rollback"."""

    name: ClassVar[str] = "ActionEndTransactionRequest"
    action_type: ClassVar[str] = "EndTransaction"
    transaction_id: bytes
    action: str


@dataclass(frozen=True, slots=True)
class BeginSavepoint:
    """Create a savepoint called ``name`` inside a transaction.

    Unlike the other classes, ``name`` is a field here (the savepoint's name), so
    use :func:`message_name` for the protobuf message name.
    """

    action_type: ClassVar[str] = "BeginSavepoint"
    transaction_id: bytes
    name: str


@dataclass(frozen=True, slots=True)
class EndSavepoint:
    """Finish a savepoint; ``action`` is "unspecified", "release" or "rollback"."""

    name: ClassVar[str] = "ActionEndSavepointRequest"
    action_type: ClassVar[str] = "EndSavepoint"
    savepoint_id: bytes
    action: str


@dataclass(frozen=True, slots=True)
class CancelQuery:
    """Cancel the query of a serialized FlightInfo (superseded by CancelFlightInfo)."""

    name: ClassVar[str] = "ActionCancelQueryRequest"
    action_type: ClassVar[str] = "CancelQuery"
    info: bytes
    #: the tickets of the FlightInfo's endpoints (decoding fills them in)
    tickets: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class CancelFlightInfo:
    """Cancel the query of a FlightInfo; ``info`` is the serialized FlightInfo."""

    name: ClassVar[str] = "CancelFlightInfoRequest"
    action_type: ClassVar[str] = "CancelFlightInfo"
    info: bytes
    #: the tickets of the FlightInfo's endpoints (decoding fills them in)
    tickets: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class RenewFlightEndpoint:
    """Extend an endpoint's expiry; ``endpoint`` is the serialized FlightEndpoint."""

    name: ClassVar[str] = "RenewFlightEndpointRequest"
    action_type: ClassVar[str] = "RenewFlightEndpoint"
    endpoint: bytes
    #: the endpoint's ticket (decoding fills it in)
    ticket: bytes = b""


@dataclass(frozen=True, slots=True)
class SetSessionOptions:
    """Set (or, with a None value, unset) session options."""

    name: ClassVar[str] = "SetSessionOptionsRequest"
    action_type: ClassVar[str] = "SetSessionOptions"
    options: dict[str, SessionValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GetSessionOptions:
    """Read the session's options."""

    name: ClassVar[str] = "GetSessionOptionsRequest"
    action_type: ClassVar[str] = "GetSessionOptions"


@dataclass(frozen=True, slots=True)
class CloseSession:
    """End the session."""

    name: ClassVar[str] = "CloseSessionRequest"
    action_type: ClassVar[str] = "CloseSession"


ActionRequest: TypeAlias = (
    CreatePreparedStatement
    | ClosePreparedStatement
    | CreatePreparedSubstraitPlan
    | BeginTransaction
    | EndTransaction
    | BeginSavepoint
    | EndSavepoint
    | CancelQuery
    | CancelFlightInfo
    | RenewFlightEndpoint
    | SetSessionOptions
    | GetSessionOptions
    | CloseSession
)
