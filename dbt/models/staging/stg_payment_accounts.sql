{{ config(dist='customer_id', sort=['customer_id']) }}

with {{ lake_events(event_types=['payment.account_created']) }}

select
    event_id,
    event_type,
    occurred_at,
    {{ json_str('data', 'customer_id') }} as customer_id,
    {{ json_str('data', 'tenant_id') }} as tenant_id,
    {{ json_str('data', 'stripe_customer_id') }} as stripe_customer_id,
    schema_version,
    producer,
    ingested_at,
    loaded_at
from events
