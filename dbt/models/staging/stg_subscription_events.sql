{{ config(dist='subscription_id', sort=['subscription_id', 'occurred_at']) }}

with {{ lake_events(prefix='subscription.') }}

select
    event_id,
    event_type,
    occurred_at,
    {{ json_str('data', 'subscription_id') }} as subscription_id,
    {{ json_str('data', 'customer_id') }} as customer_id,
    {{ json_str('data', 'tenant_id') }} as tenant_id,
    {{ json_str('data', 'plan_id') }} as plan_id,
    {{ json_str('data', 'status') }} as status,
    {{ json_str('data', 'previous_status') }} as previous_status,
    {{ json_str('data', 'pending_plan_id') }} as pending_plan_id,
    {{ json_str('data', 'previous_plan_id') }} as previous_plan_id,
    -- only on the event that changed it (see int_subscription_states)
    coalesce({{ json_bool('data', 'cancel_at_period_end') }}, false) as cancel_at_period_end,
    {{ json_ts('data', 'current_period_start') }} as current_period_start,
    {{ json_ts('data', 'current_period_end') }} as current_period_end,
    {{ json_ts('data', 'trial_end') }} as trial_end,
    {{ json_ts('data', 'canceled_at') }} as canceled_at,
    {{ json_ts('data', 'paused_at') }} as paused_at,
    {{ json_int('data', 'amount') }} as amount,
    lower({{ json_str('data', 'currency') }}) as currency,
    {{ json_str('data', 'interval') }} as billing_interval,
    {{ json_int('data', 'proration_amount_due') }} as proration_amount_due,
    {{ json_str('data', 'payment_id') }} as payment_id,
    {{ json_str('data', 'invoice_id') }} as invoice_id,
    {{ json_str('data', 'decline_code') }} as decline_code,
    schema_version,
    producer,
    kafka_topic,
    kafka_partition,
    kafka_offset,
    ingested_at,
    loaded_at
from events
