"""The dbt project as Dagster assets downstream of `raw_events` (dbt's `lake.events` source
*is* `raw_events`), and dagster-dbt's CLI resource. The assets are built from the manifest
when the code location loads (`paywall_dbt()`, once per process), never at import."""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, AssetSpec, ResourceParam
from dagster_dbt import (
    DagsterDbtTranslator,
    DbtCliResource,
    DbtProject,
    dbt_assets,
    get_asset_key_for_model,
)

from assets.shared import RETRIES
from assets.warehouse.assets import WAREHOUSE_POOL, raw_events
from assets.warehouse.config import warehouse_config
from assets.warehouse.dbt_project import dbt_executable, dbt_manifest, dbt_project
from assets.warehouse.resources import WarehouseResource
from paywall.settings import Settings

LAKE_SOURCE = ("lake", "events")


class PaywallDbtTranslator(DagsterDbtTranslator):
    """dbt's `lake.events` source is the `raw_events` asset, so models are downstream of
    the loads; models and seeds are grouped by their folder (staging, intermediate, marts)."""

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] == "source":
            if (props["source_name"], props["name"]) == LAKE_SOURCE:
                return spec.replace_attributes(key=raw_events.key)
            return spec
        fqn = props.get("fqn", [])
        group = fqn[1] if props["resource_type"] == "model" and len(fqn) > 2 else "warehouse"
        if props["resource_type"] == "seed":
            group = "reference"
        return spec.replace_attributes(group_name=f"dbt_{group}")


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """dagster-dbt hands dbt a copy of os.environ: the warehouse's settings go in for the
    moment the dbt process is started (and the adapter handle made), then the environment
    is as it was."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@cache
def paywall_dbt() -> AssetsDefinition:
    """Every dbt model, seed and test (tests as asset checks), as one multi-asset."""
    project = dbt_project()

    @dbt_assets(
        manifest=dbt_manifest(),
        project=project,
        name="paywall_dbt",
        dagster_dbt_translator=PaywallDbtTranslator(),
        retry_policy=RETRIES,
        pool=WAREHOUSE_POOL,
    )
    def build(
        context: AssetExecutionContext,
        dbt: DbtCliResource,
        warehouse: ResourceParam[WarehouseResource],
    ) -> Iterator[Any]:
        """`dbt build` (seeds, models, tests as asset checks) of the selected dbt assets."""
        # Each invocation gets its own folder under DBT_TARGET_PATH (dagster-dbt's convention).
        target = {"DBT_TARGET_PATH": str(project.target_path)}
        with _environment({**warehouse.dbt_env(), **target}):
            invocation = dbt.cli(["build"], context=context)
        yield from invocation.stream()

    return build


def dbt_key(name: str) -> AssetKey:
    """The asset key of a dbt model or seed (`<schema>/<name>`, e.g. marts/mrr_monthly)."""
    return get_asset_key_for_model([paywall_dbt()], name)


def dbt_resource(settings: Settings) -> DbtCliResource:
    """dagster-dbt's CLI resource on the repo's dbt project, on the warehouse's target, with
    the venv's own dbt."""
    return DbtCliResource(
        project_dir=dbt_project(),
        target=warehouse_config(settings).kind,
        dbt_executable=dbt_executable(),
    )
