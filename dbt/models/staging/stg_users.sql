{{ config(dist='user_id', sort=['occurred_at']) }}

with {{ lake_events(event_types=['user.created']) }}

select
    event_id,
    event_type,
    occurred_at,
    {{ json_str('data', 'user_id') }} as user_id,
    {{ json_str('data', 'customer_id') }} as customer_id,
    {{ json_str('data', 'tenant_id') }} as tenant_id,
    {{ json_ts('data', 'created_at') }} as user_created_at,
    schema_version,
    producer,
    ingested_at,
    loaded_at
from events
