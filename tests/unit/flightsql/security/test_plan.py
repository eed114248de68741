"""Plan facts from Spark's JSON rendering of plan trees: the pure part of the judgement."""

from __future__ import annotations

import pytest

from flightsql.security.guard import parse_allowed
from flightsql.security.plan import Context, Feature, Privilege, TableName, judge, parse_trees, protected_setting, qualify

CONTEXT = Context("spark_catalog", "sales", "/srv/warehouse", frozenset({"mine"}))
SPARK = "org.apache.spark.sql.catalyst"


def node(cls: str, children: int = 0, **fields: object) -> dict[str, object]:
    return {"class": cls, "num-children": children, **fields}


def test_trees_are_rebuilt_from_the_pre_order_list() -> None:
    tree = parse_trees([node("a.Join", 2), node("a.Left"), node("a.Right", 1), node("a.Leaf")])
    assert [n.name for n in tree.walk()] == ["Join", "Left", "Right", "Leaf"]


def test_expressions_inside_fields_are_walked() -> None:
    project = node(f"{SPARK}.plans.logical.Project", 1, projectList=[[
        node(f"{SPARK}.expressions.Alias", 1), node(f"{SPARK}.expressions.CallMethodViaReflection", 0)]])
    tree = parse_trees([project, node(f"{SPARK}.plans.logical.OneRowRelation")])
    facts = judge(tree, tree, CONTEXT)
    assert facts.features == frozenset({Feature.REFLECTION})


def test_a_relation_without_a_catalog_table_is_a_path_source_unless_in_a_temporary_view() -> None:
    files = node("org.apache.spark.sql.execution.datasources.LogicalRelation", catalogTable=None)
    bare = parse_trees([node(f"{SPARK}.plans.logical.Project", 1), files])
    assert judge(bare, bare, CONTEXT).features == frozenset({Feature.PATH_SOURCES})
    viewed = parse_trees([node(f"{SPARK}.plans.logical.View", 1, isTempView=True), files])
    assert judge(viewed, viewed, CONTEXT).features == frozenset()


def test_locations_inside_the_warehouse_are_fine_and_others_are_not() -> None:
    def spec(location: str) -> frozenset[Feature]:
        tree = parse_trees([node(f"{SPARK}.plans.logical.UnresolvedTableSpec", location=location, provider="parquet")])
        return judge(tree, None, CONTEXT).features

    assert spec("/srv/warehouse/sales.db/t") == frozenset()
    assert spec("file:/srv/warehouse/x") == frozenset()
    for outside in ("/srv/warehouse-evil/t", "/srv/warehouse/../etc", "/tmp/x", "hdfs://nn/srv/warehouse/t"):
        assert spec(outside) == frozenset({Feature.EXTERNAL_LOCATIONS}), outside


def test_names_are_qualified_as_the_session_resolves_them() -> None:
    assert qualify(["t"], CONTEXT) == TableName("spark_catalog", "sales", "t")
    assert qualify(["hr", "t"], CONTEXT) == TableName("spark_catalog", "hr", "t")
    assert qualify(["c", "hr", "t"], CONTEXT) == TableName("c", "hr", "t")
    assert qualify(["hr"], CONTEXT, namespace=True) == TableName("spark_catalog", "hr", "*")


def test_reads_without_an_analysed_plan_skip_ctes_and_temporary_views() -> None:
    tree = parse_trees([
        node(f"{SPARK}.plans.logical.UnresolvedWith", 1, cteRelations=[{"_1": "x"}]),
        node(f"{SPARK}.plans.logical.Join", 3),
        node(f"{SPARK}.analysis.UnresolvedRelation", multipartIdentifier="[x]"),
        node(f"{SPARK}.analysis.UnresolvedRelation", multipartIdentifier="[mine]"),
        node(f"{SPARK}.analysis.UnresolvedRelation", multipartIdentifier="[hr, salaries]"),
    ])
    facts = judge(tree, None, CONTEXT)
    assert [(a.privilege, a.table) for a in facts.accesses] == [
        (Privilege.SELECT, TableName("spark_catalog", "hr", "salaries"))]


@pytest.mark.parametrize("key", ["spark.sql.runSQLOnFiles", "SPARK.SQL.RUNSQLONFILES", "spark.hadoop.fs.defaultFS",
                                 "hive.exec.scratchdir", "spark.sql.catalog.evil", "spark.driver.extraClassPath"])
def test_protected_settings(key: str) -> None:
    assert protected_setting(key)


@pytest.mark.parametrize("key", ["spark.sql.shuffle.partitions", "spark.sql.session.timeZone",
                                 "spark.flightsql.test.failAfterCommit"])
def test_ordinary_settings(key: str) -> None:
    assert not protected_setting(key)


def test_allowed_features_are_parsed_strictly() -> None:
    assert parse_allowed("") == frozenset()
    assert parse_allowed(" reflection , script-transform") == {Feature.REFLECTION, Feature.SCRIPT_TRANSFORM}
    assert parse_allowed("all") == frozenset(Feature)
    with pytest.raises(ValueError, match="unknown feature shell"):
        parse_allowed("reflection,shell")
