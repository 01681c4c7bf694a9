{{ config(dist='customer_id', sort=['customer_id', 'occurred_at']) }}

with {{ lake_events(prefix='customer.') }}

select
    event_id,
    event_type,
    occurred_at,
    {{ json_str('data', 'customer_id') }} as customer_id,
    {{ json_str('data', 'tenant_id') }} as tenant_id,
    {{ json_str('data', 'email') }} as email_hash,
    {{ json_str('data', 'name') }} as name_hash,
    {{ json_str('data', 'phone') }} as phone_hash,
    {{ json_bool('data', 'marketing_opt_in') }} as marketing_opt_in,
    {{ json_str('data', 'status') }} as customer_status,
    schema_version,
    producer,
    kafka_topic,
    kafka_partition,
    kafka_offset,
    ingested_at,
    loaded_at
from events
