"""Lake → warehouse as a Dagster asset: `raw_events`, one dynamic partition per lake
(event_type, event_date) folder, validated and then loaded by `load_partition`. The dbt
models downstream of it are in dbt.py."""

from collections.abc import Iterator

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    DynamicPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    asset,
)

from assets.shared import RETRIES
from assets.warehouse.lake import LakePartition, partition_files, read_files
from assets.warehouse.loader import load_partition
from assets.warehouse.quality import validation_result
from assets.warehouse.resources import WarehouseResource
from assets.warehouse.suites import lake_contract_suite, validate

KEY_SEPARATOR = "|"
# One writer at a time: DuckDB allows one writing process per file, and a load racing a
# dbt build would read half a partition. Limit the pool to 1 in the instance (dagster.yaml).
WAREHOUSE_POOL = "warehouse"

lake_partitions = DynamicPartitionsDefinition(name="lake_partitions")


def partition_key(partition: LakePartition) -> str:
    """`<event_type>|<YYYY-MM-DD>`, the dynamic partition key of a lake partition."""
    return f"{partition.event_type}{KEY_SEPARATOR}{partition.event_date.isoformat()}"


def lake_partition(key: str) -> LakePartition:
    event_type, sep, day = key.partition(KEY_SEPARATOR)
    if not sep:
        raise ValueError(f"not a lake partition key: {key!r}")
    return LakePartition.of(event_type, day)


CONTRACT_CHECK = "raw_events_contract"


@asset(
    partitions_def=lake_partitions,
    group_name="warehouse",
    kinds={"s3", "duckdb"},
    retry_policy=RETRIES,
    pool=WAREHOUSE_POOL,
    check_specs=[
        AssetCheckSpec(
            CONTRACT_CHECK,
            asset="raw_events",
            blocking=True,
            description=(
                "Great Expectations on the lake partition, before it is loaded: event_id, "
                "event_type and occurred_at not null, event types with a contract, no "
                "clear-text email in data. A failure loads nothing and stops the run."
            ),
        )
    ],
    description=(
        "raw.events: one lake partition (event_type x UTC day of Parquet in S3) replaced in "
        "the warehouse (delete + insert in one transaction, booked in raw.loaded_partitions)."
    ),
)
def raw_events(
    context: AssetExecutionContext, warehouse: ResourceParam[WarehouseResource]
) -> Iterator[AssetCheckResult | MaterializeResult]:
    """Validate, then load. The contract check runs before the load: a partition that fails
    it never reaches raw.events, so no later dbt build picks it up either."""
    part = lake_partition(context.partition_key)
    settings = warehouse.settings
    incoming = read_files(settings, partition_files(settings, part)).to_pandas()
    contract = validate(lake_contract_suite(), incoming)
    yield validation_result(contract, AssetCheckSeverity.ERROR, CONTRACT_CHECK)
    if not contract.success:
        raise Failure(
            f"{context.partition_key}: not loaded, the lake partition breaks the event "
            f"contract\n{contract.summary()}",
            allow_retries=False,
        )
    # The load lists the partition again: a file landing in between changes the partition's
    # fingerprint, and the sensor requests (and validates) it again.
    result = load_partition(warehouse.warehouse, part.event_type, part.event_date)
    yield MaterializeResult(
        metadata={
            "dagster/row_count": result.rows,
            "event_type": part.event_type,
            "event_date": part.event_date.isoformat(),
            "lake_files": result.files,
            "lake_bytes": result.bytes,
            "warehouse": warehouse.config.kind,
            "loaded_at": MetadataValue.timestamp(result.loaded_at),
        }
    )
