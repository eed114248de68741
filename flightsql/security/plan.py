"""What a SQL statement would do, read off Spark's own plans without running it.

A statement is parsed by the session's parser and analysed with commands left
unexecuted; both logical plans come back as Spark's JSON rendering of the tree (one
py4j call each), whose nodes and expressions are named by their JVM classes.  Trust
decisions are made on those classes and on the identifiers the plans carry, never on
the statement's text.

:class:`PlanFacts` says which server features the statement reaches (see
:mod:`flightsql.security.guard`) and which tables it reads, writes, creates or drops
(see :mod:`flightsql.security.policy`).
"""

from __future__ import annotations

import enum
import itertools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


class Privilege(enum.Enum):
    SELECT = "select"
    MODIFY = "modify"
    CREATE = "create"
    DROP = "drop"
    ADMIN = "admin"


@dataclass(frozen=True)
class TableName:
    """A table, view or (with ``table == "*"``) a whole schema, fully qualified."""

    catalog: str
    schema: str
    table: str

    def __str__(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.table}"


@dataclass(frozen=True)
class Access:
    privilege: Privilege
    table: TableName


class Feature(enum.Enum):
    """What reaches the node's operating system or JVM: refused to users unless allowed."""

    SCRIPT_TRANSFORM = "script-transform"
    REFLECTION = "reflection"
    PATH_SOURCES = "path-sources"
    RESOURCES = "resources"
    FUNCTIONS = "functions"
    EXTERNAL_LOCATIONS = "external-locations"
    SERVER_SETTINGS = "server-settings"


@dataclass(frozen=True)
class Reach:
    """One use of a feature, with what to tell the user about it."""

    feature: Feature
    what: str


@dataclass(frozen=True)
class PlanFacts:
    reaches: tuple[Reach, ...] = ()
    accesses: tuple[Access, ...] = ()
    #: whether the analysed plan was seen (else the parsed plan alone was judged)
    analysed: bool = True

    @property
    def features(self) -> frozenset[Feature]:
        return frozenset(r.feature for r in self.reaches)


@dataclass
class Node:
    """One node of a plan or expression tree, from Spark's JSON rendering."""

    cls: str
    fields: dict[str, Any]
    children: list[Node] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.cls.rsplit(".", 1)[-1]

    def walk(self) -> Iterator[Node]:
        """This node, its children and every tree held in its fields (expressions, subplans)."""
        yield self
        for child in self.children:
            yield from child.walk()
        for value in self.fields.values():
            for tree in _trees_in(value):
                yield from tree.walk()


def parse_trees(flat: list[Any]) -> Node:
    """Rebuild a tree from TreeNode.toJSON's pre-order list (``num-children`` per node)."""
    position = 0

    def take() -> Node:
        nonlocal position
        item = flat[position]
        position += 1
        node = Node(str(item.get("class", "")), {k: v for k, v in item.items() if k not in ("class", "num-children")})
        node.children = [take() for _ in range(int(item.get("num-children", 0)))]
        return node

    return take()


def _trees_in(value: Any) -> Iterator[Node]:
    """Trees nested in a field value: a flat node list, or lists and objects holding them."""
    if isinstance(value, list):
        if value and isinstance(value[0], dict) and "class" in value[0] and "num-children" in value[0]:
            yield parse_trees(value)
            return
        for item in value:
            yield from _trees_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _trees_in(item)


# -- what the classes mean ------------------------------------------------------------

_SCRIPT_TRANSFORMS = {"ScriptTransformation", "HiveScriptTransformationExec", "ScriptTransformationExec"}
_REFLECTION = {"CallMethodViaReflection", "TryReflect"}
_REFLECTION_FUNCTIONS = {"reflect", "java_method", "try_reflect"}
_RESOURCES = {
    "AddJarsCommand": "ADD JAR", "AddFilesCommand": "ADD FILE", "AddArchivesCommand": "ADD ARCHIVE",
    "LoadData": "LOAD DATA", "LoadDataCommand": "LOAD DATA",
}
_FUNCTIONS = {"CreateFunction": "CREATE FUNCTION", "CreateFunctionCommand": "CREATE FUNCTION"}
_ELSEWHERE = {
    "InsertIntoDir": "INSERT OVERWRITE DIRECTORY",
    "InsertIntoDataSourceDirCommand": "INSERT OVERWRITE DIRECTORY",
    "InsertIntoHiveDirCommand": "INSERT OVERWRITE DIRECTORY",
    "CreateTempViewUsing": "CREATE TEMPORARY VIEW ... USING",
    "SetTableLocation": "ALTER TABLE ... SET LOCATION",
    "AlterTableSetLocationCommand": "ALTER TABLE ... SET LOCATION",
    "SetNamespaceLocation": "ALTER DATABASE ... SET LOCATION",
    "SetNamespaceProperties": "ALTER DATABASE ... SET PROPERTIES",
}
#: table formats a user may create: files in the warehouse, nothing that reaches another system
FILE_FORMATS = frozenset({"parquet", "orc", "json", "csv", "text", "avro", "hive", "delta"})
_TABLE_CREATION = {"CreateTable", "CreateTableAsSelect", "ReplaceTable", "ReplaceTableAsSelect"}
_SPEC = {"UnresolvedTableSpec", "TableSpec"}

# statements that change tables: the parsed node's class, the privilege, and where its target is
_WRITES: dict[str, Privilege] = {
    "InsertIntoStatement": Privilege.MODIFY, "DeleteFromTable": Privilege.MODIFY, "UpdateTable": Privilege.MODIFY,
    "MergeIntoTable": Privilege.MODIFY, "TruncateTable": Privilege.MODIFY, "TruncatePartition": Privilege.MODIFY,
    "OverwriteByExpression": Privilege.MODIFY, "AppendData": Privilege.MODIFY, "LoadData": Privilege.MODIFY,
    "CreateTable": Privilege.CREATE, "CreateTableAsSelect": Privilege.CREATE, "CreateView": Privilege.CREATE,
    "CreateViewCommand": Privilege.CREATE,
    "DropTable": Privilege.DROP, "DropView": Privilege.DROP,
    "CreateNamespace": Privilege.CREATE, "DropNamespace": Privilege.DROP,
    "CacheTable": Privilege.SELECT, "UncacheTable": Privilege.SELECT,
    # a table's definition is read with the table
    "DescribeRelation": Privilege.SELECT, "DescribeColumn": Privilege.SELECT, "ShowCreateTable": Privilege.SELECT,
    "ShowColumns": Privilege.SELECT, "ShowTableProperties": Privilege.SELECT, "ShowPartitions": Privilege.SELECT,
}
_REPLACES = {"ReplaceTable", "ReplaceTableAsSelect"}
#: statements that change a table's or schema's definition (besides ALTER... and RENAME...): admin
_ALTERATIONS = {
    "AddColumns", "DropColumns", "RenameColumn", "ReplaceColumns", "RepairTable", "AnalyzeTable", "AnalyzeTables",
    "AnalyzeColumn", "RecoverPartitions", "CommentOnTable", "CommentOnNamespace", "SetTableProperties",
    "UnsetTableProperties", "SetTableLocation", "SetTableSerDeProperties", "SetViewProperties",
    "UnsetViewProperties", "SetNamespaceProperties", "SetNamespaceLocation", "AddPartitions", "DropPartitions",
    "RenamePartitions",
}
_NAMESPACE_COMMANDS = {"CreateNamespace", "DropNamespace", "SetNamespaceProperties", "SetNamespaceLocation"}
_READ_LEAVES = {"LogicalRelation", "HiveTableRelation", "DataSourceV2Relation", "DataSourceV2ScanRelation"}


@dataclass(frozen=True)
class Context:
    """What identifiers are resolved against, and where managed tables live."""

    catalog: str
    schema: str
    warehouse: str
    temporary_views: frozenset[str] = frozenset()


def judge(parsed: Node, analysed: Node | None, context: Context) -> PlanFacts:
    """The facts of a statement from its parsed and (if it analysed) analysed plans."""
    reaches: list[Reach] = []
    trees = [parsed] + ([analysed] if analysed is not None else [])
    for tree in trees:
        for node in tree.walk():
            reaches.extend(_reaches_of(node, context))
    if analysed is not None:
        reaches.extend(_path_relations_analysed(analysed))
    else:
        reaches.extend(_path_relations(parsed))
    unique = tuple(dict.fromkeys(reaches))
    reads = _reads(analysed, context) if analysed is not None else _parsed_reads(parsed, context)
    accesses = tuple(dict.fromkeys(_writes(parsed, context) + reads))
    return PlanFacts(unique, accesses, analysed is not None)


def _path_relations_analysed(node: Node, in_temporary_view: bool = False) -> Iterator[Reach]:
    """Relations on files by path, but those inside a session's temporary views: a user
    cannot make such a view (every way to is refused), so the server made it (an ingest)."""
    if node.name == "LogicalRelation" and node.fields.get("catalogTable") is None and not in_temporary_view:
        yield Reach(Feature.PATH_SOURCES, "a query on files by path")
    inside = in_temporary_view or (node.name == "View" and bool(node.fields.get("isTempView")))
    for child in node.children:
        yield from _path_relations_analysed(child, inside)
    for value in node.fields.values():
        for tree in _trees_in(value):
            yield from _path_relations_analysed(tree, inside)


#: data source names Spark accepts in ``<source>.`<path>``` (files queried by path)
PATH_SOURCE_NAMES = FILE_FORMATS | {"binaryfile", "image", "libsvm", "xml", "jdbc"}


def _path_relations(parsed: Node) -> Iterator[Reach]:
    """Without an analysed plan: relations named ``<source>.`<path>``` read files by path."""
    for node in parsed.walk():
        if node.name == "UnresolvedRelation":
            names = _names(node.fields.get("multipartIdentifier"))
            if len(names) == 2 and names[0].lower() in PATH_SOURCE_NAMES and ("/" in names[1] or ":" in names[1]):
                yield Reach(Feature.PATH_SOURCES, f"a query on files by path ({names[0]}.`...`)")


def _parsed_reads(parsed: Node, context: Context) -> list[Access]:
    """Without an analysed plan: every relation the statement names, but its own CTEs."""
    ctes: set[str] = set()
    for node in parsed.walk():
        if node.name == "UnresolvedWith":
            for relation in node.fields.get("cteRelations") or []:
                if isinstance(relation, dict) and isinstance(relation.get("_1"), str):
                    ctes.add(relation["_1"].lower())
    found = []
    for node in parsed.walk():
        if node.name == "UnresolvedRelation":
            names = _names(node.fields.get("multipartIdentifier"))
            if len(names) == 1 and (names[0].lower() in ctes or names[0].lower() in context.temporary_views):
                continue
            table = qualify(names, context)
            if table:
                found.append(Access(Privilege.SELECT, table))
    return found


def _reaches_of(node: Node, context: Context) -> Iterator[Reach]:
    name = node.name
    if name in _SCRIPT_TRANSFORMS:
        yield Reach(Feature.SCRIPT_TRANSFORM, "SELECT TRANSFORM (a script run on the server)")
    elif name in _REFLECTION or (
        name == "UnresolvedFunction" and _last_name(node.fields.get("nameParts")) in _REFLECTION_FUNCTIONS
    ):
        yield Reach(Feature.REFLECTION, "reflect/java_method (a JVM method called on the server)")
    elif name in _RESOURCES:
        yield Reach(Feature.RESOURCES, f"{_RESOURCES[name]} (server files)")
    elif name in _FUNCTIONS:
        yield Reach(Feature.FUNCTIONS, f"{_FUNCTIONS[name]} (a JVM class loaded on the server)")
    elif name in _ELSEWHERE:
        yield Reach(Feature.EXTERNAL_LOCATIONS, f"{_ELSEWHERE[name]} (a location outside the warehouse)")
    elif name in _SPEC:
        location = node.fields.get("location")
        if isinstance(location, str) and not _inside(location, context.warehouse):
            yield Reach(Feature.EXTERNAL_LOCATIONS, f"LOCATION {location!r} (outside the warehouse)")
        provider = node.fields.get("provider")
        if isinstance(provider, str) and provider.lower() not in FILE_FORMATS:
            yield Reach(Feature.EXTERNAL_LOCATIONS, f"USING {provider} (only file formats in the warehouse)")
    elif name == "OptionList":
        for key in _option_keys(node.fields.get("options")):
            if key.lower() in ("path", "paths"):
                yield Reach(Feature.EXTERNAL_LOCATIONS, "OPTIONS (path ...) (a location chosen by the user)")
    elif name in ("CreateDataSourceTableCommand", "CreateDataSourceTableAsSelectCommand", "CreateTableCommand"):
        table = node.fields.get("table")
        if isinstance(table, dict):
            provider = table.get("provider")
            if isinstance(provider, str) and provider.lower() not in FILE_FORMATS:
                yield Reach(Feature.EXTERNAL_LOCATIONS, f"USING {provider} (only file formats in the warehouse)")



def _option_keys(options: Any) -> Iterator[str]:
    if isinstance(options, list):
        for item in options:
            if isinstance(item, dict) and isinstance(item.get("_1"), str):
                yield item["_1"]


def _inside(location: str, warehouse: str) -> bool:
    """Whether a location lies in the warehouse directory (file paths only)."""
    import posixpath
    from urllib.parse import urlparse

    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        return False
    path = posixpath.normpath(parsed.path or location)
    root = posixpath.normpath(urlparse(warehouse).path or warehouse)
    return path == root or path.startswith(root.rstrip("/") + "/")


def _last_name(parts: Any) -> str:
    names = _names(parts)
    return names[-1].lower() if names else ""


def _names(parts: Any) -> list[str]:
    """Identifier parts as Spark's JSON renders a Seq[String]: ``"[a, b]"`` or a list."""
    if isinstance(parts, list):
        return [str(p) for p in parts]
    if isinstance(parts, str) and parts.startswith("[") and parts.endswith("]"):
        inner = parts[1:-1]
        return [p.strip() for p in inner.split(",")] if inner else []
    return []


def qualify(parts: list[str], context: Context, namespace: bool = False) -> TableName | None:
    """A name as the session resolves it (current catalog and schema fill in what is missing)."""
    if namespace:
        if len(parts) == 1:
            return TableName(context.catalog, parts[0], "*")
        if len(parts) == 2:
            return TableName(parts[0], parts[1], "*")
        return None
    if len(parts) == 1:
        return TableName(context.catalog, context.schema, parts[0])
    if len(parts) == 2:
        return TableName(context.catalog, parts[0], parts[1])
    if len(parts) == 3:
        return TableName(*parts)
    return None


def _target(node: Node) -> list[str]:
    """The identifier a command acts on: in its own fields or its identifier child."""
    for key in ("multipartIdentifier", "nameParts", "name"):
        names = _names(node.fields.get(key))
        if names:
            return names
    for key in ("tableIdent", "name", "table"):
        ident = node.fields.get(key)
        if isinstance(ident, dict) and isinstance(ident.get("table"), str):
            return [p for p in (ident.get("catalog"), ident.get("database"), ident["table"]) if p]
    for tree in [*node.children, *(t for v in node.fields.values() for t in _trees_in(v))]:
        if tree.name.startswith("Unresolved"):
            names = _names(tree.fields.get("multipartIdentifier")) or _names(tree.fields.get("nameParts"))
            if names:
                return names
    return []


def _writes(parsed: Node, context: Context) -> list[Access]:
    name = parsed.name
    privilege = _WRITES.get(name)
    if name in _REPLACES:
        target = qualify(_target(parsed), context)
        return [Access(Privilege.DROP, target), Access(Privilege.CREATE, target)] if target else []
    if privilege is None:
        if name.startswith(("Alter", "Rename")) or name in _ALTERATIONS:
            target = qualify(_target(parsed), context, namespace=name in _NAMESPACE_COMMANDS)
            return [Access(Privilege.ADMIN, target)] if target else []
        return []
    parts = _target(parsed)
    if not parts or (len(parts) == 1 and parts[0].lower() in context.temporary_views):
        return []  # a session's own temporary view
    if name == "CreateViewCommand" and "TempView" in json.dumps(parsed.fields.get("viewType")):
        return []  # CREATE TEMPORARY VIEW: private to the session, its body is checked when used
    target = qualify(parts, context, namespace=name in _NAMESPACE_COMMANDS)
    return [Access(privilege, target)] if target else []


def _reads(analysed: Node, context: Context) -> list[Access]:
    """Tables and persistent views read; a view's own body is not the reader's business."""
    found: list[Access] = []

    def visit(node: Node) -> None:
        name = node.name
        if name == "View":
            desc = node.fields.get("desc")
            if not node.fields.get("isTempView") and isinstance(desc, dict):
                table = _identifier(desc.get("identifier"), context)
                if table:
                    found.append(Access(Privilege.SELECT, table))
                return
        if name in ("LogicalRelation", "HiveTableRelation"):
            meta = node.fields.get("catalogTable") or node.fields.get("tableMeta")
            if isinstance(meta, dict):
                table = _identifier(meta.get("identifier"), context)
                if table:
                    found.append(Access(Privilege.SELECT, table))
        elif name.startswith("DataSourceV2"):
            ident: Any = node.fields.get("identifier")
            named = isinstance(ident, dict) and "name" in ident
            names = [*_names(ident.get("namespace")), ident["name"]] if named else []
            table = qualify(names, context) if names else None
            if table:
                found.append(Access(Privilege.SELECT, table))
        for child in node.children:
            visit(child)
        for value in node.fields.values():
            for tree in _trees_in(value):
                visit(tree)

    visit(analysed)
    return found


def _identifier(ident: Any, context: Context) -> TableName | None:
    if not isinstance(ident, dict) or not isinstance(ident.get("table"), str):
        return None
    return TableName(ident.get("catalog") or context.catalog, ident.get("database") or context.schema, ident["table"])


# -- Spark ------------------------------------------------------------------------------


def inspect(spark: SparkSession, sql: str, parameter_count: int = 0, analysed_plan: Any = None) -> PlanFacts:
    """Parse and analyse ``sql`` in ``spark``'s session, run nothing, and judge both plans.

    ``analysed_plan``: the JVM plan of a query's DataFrame, where the caller made one
    anyway (a query's DataFrame is analysed, never run, when it is made): it saves an
    analysis.  Parameter markers are bound to NULL for analysis; a statement that does not
    analyse (a missing table, a marker where NULL cannot stand) is judged on its parsed
    plan alone, which is enough for every server feature: such a statement runs nothing
    until it analyses, and is judged again when it is executed with its values."""
    state = spark._jsparkSession.sessionState()
    parsed_plan = state.sqlParser().parsePlan(sql)
    parsed = parse_trees(json.loads(parsed_plan.toJSON()))
    if analysed_plan is None:
        analysed = _analysed(spark, parsed_plan, parameter_count)
    else:
        analysed = parse_trees(json.loads(analysed_plan.toJSON()))
    facts = judge(parsed, analysed, context_of(spark))
    extra: list[Reach] = []
    key = _set_key(parsed_plan) if parsed.name == "SetCommand" else None
    if key is not None and protected_setting(key):
        extra.append(Reach(Feature.SERVER_SETTINGS, f"SET {key}"))
    if parsed.name == "CreateNamespace" and parsed_plan.properties().get("location").isDefined():
        extra.append(Reach(Feature.EXTERNAL_LOCATIONS, "CREATE DATABASE ... LOCATION (a location chosen by the user)"))
    if extra:
        facts = PlanFacts(facts.reaches + tuple(extra), facts.accesses, facts.analysed)
    return facts


def _skip_commands(spark: SparkSession) -> Any:
    """Spark's execution mode that analyses a command without running it."""
    jvm: Any = spark._jvm
    return getattr(getattr(jvm.org.apache.spark.sql.execution, "CommandExecutionMode$"), "MODULE$").SKIP()


def _analysed(spark: SparkSession, parsed_plan: Any, parameter_count: int) -> Node | None:
    """The analysed plan of a parsed one, commands not run; None where it does not analyse."""
    try:
        plan = _bound_to_null(spark, parsed_plan, parameter_count) if parameter_count else parsed_plan
        skip = _skip_commands(spark)
        return parse_trees(json.loads(spark._jsparkSession.sessionState().executePlan(plan, skip).analyzed().toJSON()))
    except Exception as exc:  # noqa: BLE001 - judged on the parsed plan; the error surfaces on execution
        log.debug("statement judged on its parsed plan (analysis failed: %s)", str(exc).splitlines()[0][:200])
        return None


def _set_key(plan: Any) -> str | None:
    """The key a SET command assigns (its JSON rendering leaves the pair out)."""
    kv = plan.kv()
    return str(kv.get()._1()) if kv.isDefined() else None


#: settings a user may not change: they would undo a refusal, load classes, or reach the
#: file system or other services (catalog plugins, Hadoop and Hive settings)
_PROTECTED_PREFIXES = ("spark.hadoop.", "hive.", "spark.sql.catalog.", "spark.sql.hive.", "spark.sql.extensions",
                       "spark.sql.warehouse.", "spark.sql.sources.", "spark.sql.queryExecutionListeners",
                       "spark.sql.streaming.", "spark.driver.", "spark.executor.", "spark.jars", "spark.files")
_PROTECTED = frozenset({"spark.sql.runsqlonfiles", "spark.sql.legacy.allowhivefunctionsnonnative"})


def protected_setting(key: str) -> bool:
    """Whether ``key`` is a setting users may not set (SET, SetSessionOptions)."""
    lowered = key.strip().lower()
    return lowered in _PROTECTED or lowered.startswith(tuple(p.lower() for p in _PROTECTED_PREFIXES))


def context_of(spark: SparkSession) -> Context:
    """The session's current catalog and schema, warehouse and temporary views."""
    temporary = frozenset(name.lower() for name in _temp_view_names(spark))
    return Context(spark.catalog.currentCatalog(), spark.catalog.currentDatabase(),
                   spark.conf.get("spark.sql.warehouse.dir") or "", temporary)


def _temp_view_names(spark: SparkSession) -> list[str]:
    views = spark._jsparkSession.sessionState().catalog().getTempViewNames()
    return [str(views.apply(i)) for i in range(views.size())]


def _bound_to_null(spark: SparkSession, plan: Any, count: int) -> Any:
    return _bound(spark, plan, [None] * count)


def _bound(spark: SparkSession, plan: Any, values: list[Any]) -> Any:
    """``plan`` with its positional markers bound to literals of ``values``."""
    jvm: Any = spark._jvm
    literal = getattr(getattr(jvm.org.apache.spark.sql.catalyst.expressions, "Literal$"), "MODULE$")
    literals = jvm.java.util.ArrayList()
    for value in values:
        literals.add(literal.apply(value))
    seq = jvm.scala.jdk.javaapi.CollectionConverters.asScala(literals).toSeq()
    return jvm.org.apache.spark.sql.catalyst.analysis.PosParameterizedQuery(plan, seq)


_MARKER = "\u0001flightsql-parameter-"
_CAST = "org.apache.spark.sql.catalyst.expressions.Cast"
_LITERAL = "org.apache.spark.sql.catalyst.expressions.Literal"


def parameter_types(spark: SparkSession, sql: str, count: int) -> list[str | None]:
    """The Spark type each ``?`` marker takes in ``sql`` (None: no type is implied).

    A marker that is a whole value of an INSERT takes its column's type.  Otherwise each
    marker is bound to a string placeholder of its own and the statement analysed,
    commands not run: where the context needs another type (``int_col = ?``,
    ``? + 1``, ``ts > ?``), the analyser casts the placeholder to it, and the cast names
    the marker's type.  A statement that does not analyse implies no types."""
    if not count:
        return []
    try:
        state = spark._jsparkSession.sessionState()
        parsed = state.sqlParser().parsePlan(sql)
        types = _inserted_types(spark, parsed, count)
        if all(types):
            return types
        plan = _bound(spark, parsed, [f"{_MARKER}{i}" for i in range(count)])
        skip = _skip_commands(spark)
        nodes = json.loads(state.executePlan(plan, skip).analyzed().toJSON())
    except Exception as exc:  # noqa: BLE001 - no types implied; the values decide when bound
        log.debug("parameter types not inferred: %s", str(exc).splitlines()[0][:200])
        return [None] * count
    for expressions in _expression_lists(nodes):
        for parent, child in itertools.pairwise(expressions):
            value = child.get("value") if isinstance(child, dict) and child.get("class") == _LITERAL else None
            if (isinstance(value, str) and value.startswith(_MARKER) and isinstance(parent, dict)
                    and parent.get("class") == _CAST):
                index = int(value[len(_MARKER):])
                if 0 <= index < count and types[index] is None:
                    types[index] = str(parent.get("dataType"))
    return types


def _inserted_types(spark: SparkSession, parsed: Any, count: int) -> list[str | None]:
    """For ``INSERT INTO t [(cols)] VALUES (...), ...`` or ``INSERT INTO t SELECT ...`` of
    plain values: a marker that is a whole value takes its target column's type.  (The
    analyser types such values only after the markers are bound, so the analysed plan
    cannot say.)"""
    types: list[str | None] = [None] * count
    if parsed.getClass().getSimpleName() != "InsertIntoStatement" or parsed.partitionSpec().nonEmpty():
        return types
    from flightsql.server.metadata import quote

    schema = spark.table(".".join(quote(p) for p in _list(parsed.table().multipartIdentifier()))).schema
    declared = {f.name.lower(): f.dataType.jsonValue() for f in schema}
    columns = _list(parsed.userSpecifiedCols()) or [f.name for f in schema]
    targets = [declared.get(str(c).lower()) for c in columns]
    query = parsed.query()
    kind = query.getClass().getSimpleName()
    if kind == "UnresolvedInlineTable":
        rows = [_list(row) for row in _list(query.rows())]
    elif kind == "Project" and query.child().getClass().getSimpleName() == "OneRowRelation":
        rows = [[_unaliased(e) for e in _list(query.projectList())]]
    else:
        return types
    whole = [(column, expression.pos()) for row in rows
             for column, expression in enumerate(row) if expression.getClass().getSimpleName() == "PosParameter"]
    if len(whole) != count:
        return types  # some markers stand inside expressions: their numbers are not known here
    order = sorted(position for _, position in whole)  # markers are numbered by where they stand
    for column, position in whole:
        target = targets[column] if column < len(targets) else None
        if isinstance(target, str):
            types[order.index(position)] = target
    return types


def _list(seq: Any) -> list[Any]:
    return [seq.apply(i) for i in range(seq.size())]


def _unaliased(expression: Any) -> Any:
    while expression.getClass().getSimpleName() in ("UnresolvedAlias", "Alias"):
        expression = expression.child()
    return expression


def _expression_lists(value: Any) -> Iterator[list[Any]]:
    """Every flattened expression tree (a list of nodes, parents before children) in a
    plan's JSON."""
    if isinstance(value, list):
        if value and all(isinstance(v, dict) and "class" in v for v in value):
            yield value
        for item in value:
            yield from _expression_lists(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _expression_lists(item)
