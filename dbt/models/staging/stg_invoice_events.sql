{{ config(dist='invoice_id', sort=['invoice_id', 'occurred_at']) }}

with {{ lake_events(prefix='invoice.') }}

select
    event_id,
    event_type,
    occurred_at,
    {{ json_str('data', 'invoice_id') }} as invoice_id,
    {{ json_str('data', 'tenant_id') }} as tenant_id,
    {{ json_str('data', 'customer_id') }} as customer_id,
    {{ json_str('data', 'subscription_id') }} as subscription_id,
    {{ json_str('data', 'kind') }} as invoice_kind,
    {{ json_str('data', 'status') }} as invoice_status,
    lower({{ json_str('data', 'currency') }}) as currency,
    -- Version 1 events carry only the total: no discount or tax was ever applied then.
    coalesce({{ json_int('data', 'subtotal') }}, {{ json_int('data', 'total') }}) as subtotal,
    coalesce({{ json_int('data', 'discount') }}, 0) as discount,
    coalesce({{ json_int('data', 'tax') }}, 0) as tax,
    coalesce({{ json_bool('data', 'tax_inclusive') }}, false) as tax_inclusive,
    {{ json_int('data', 'total') }} as total,
    {{ json_int('data', 'amount_paid') }} as amount_paid,
    {{ json_int('data', 'amount_due') }} as amount_due,
    {{ json_str('data', 'payment_id') }} as payment_id,
    {{ json_str('data', 'decline_code') }} as decline_code,
    {{ json_int('data', 'attempt') }} as attempt,
    {{ json_str('data', 'reason') }} as void_reason,
    {{ json_ts('data', 'period_start') }} as period_start,
    {{ json_ts('data', 'period_end') }} as period_end,
    schema_version,
    producer,
    kafka_topic,
    kafka_partition,
    kafka_offset,
    ingested_at,
    loaded_at
from events
