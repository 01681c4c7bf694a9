{#- CTEs ending in `events`: the lake rows of some event types, new since the last
    incremental run, one per event_id (the latest loaded copy wins), envelope columns typed
    and renamed. Use as `with {{ lake_events(...) }} select ... from events` (CTEs stay at
    the top level: Redshift refuses a WITH nested in a CTE). -#}
{% macro lake_events(event_types=none, prefix=none) -%}
source as (
    select * from {{ source('lake', 'events') }}
    where
    {%- if prefix %} event_type like '{{ prefix }}%'
    {%- else %} event_type in ('{{ event_types | join("', '") }}')
    {%- endif %}
    {%- if incremental_run() %}
      -- >= : rows loaded in the same instant as the last run's newest are taken again;
      -- delete+insert on event_id makes that harmless.
      and loaded_at >= (select max(loaded_at) from {{ this }})
    {%- endif %}
),

ranked as (
    select
        source.*,
        row_number() over (
            partition by event_id
            order by loaded_at desc, ingested_at desc, topic, "partition", "offset"
        ) as copy_rank
    from source
),

events as (
    select
        event_id,
        event_type,
        schema_version,
        {{ to_utc('occurred_at') }} as occurred_at,
        producer,
        "key" as aggregate_id,
        topic as kafka_topic,
        "partition" as kafka_partition,
        "offset" as kafka_offset,
        {{ to_utc('ingested_at') }} as ingested_at,
        loaded_at,
        data
    from ranked
    where copy_rank = 1
)
{%- endmacro %}
{#- is_incremental(), except when compiling without a connection (`--vars
    '{offline_compile: true, offline_incremental: true|false}'`, used by the SQL tests to
    render either branch for Redshift): is_incremental() asks the warehouse. -#}
{% macro incremental_run() -%}
  {%- if var('offline_compile', false) -%}
    {{ return(var('offline_incremental', false)) }}
  {%- endif -%}
  {{ return(is_incremental()) }}
{%- endmacro %}
