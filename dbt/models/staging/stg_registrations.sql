{{ config(dist='registration_id', sort=['occurred_at']) }}

with {{ lake_events(prefix='registration.') }}

select
    event_id,
    event_type,
    occurred_at,
    {{ json_str('data', 'registration_id') }} as registration_id,
    {{ json_str('data', 'customer_id') }} as customer_id,
    {{ json_str('data', 'subscription_id') }} as subscription_id,
    {{ json_str('data', 'plan_id') }} as plan_id,
    {{ json_str('data', 'subscription_status') }} as subscription_status,
    {{ json_str('data', 'tenant_id') }} as tenant_id,
    {{ json_bool('data', 'trial') }} as is_trial,
    {{ json_bool('data', 'marketing_opt_in') }} as marketing_opt_in,
    {{ json_str('data', 'reason') }} as failure_reason,
    schema_version,
    producer,
    ingested_at,
    loaded_at
from events
