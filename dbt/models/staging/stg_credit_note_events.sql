{{ config(dist='credit_note_id', sort=['credit_note_id', 'occurred_at']) }}

with {{ lake_events(event_types=['credit_note.created']) }}

select
    event_id,
    event_type,
    occurred_at,
    {{ json_str('data', 'credit_note_id') }} as credit_note_id,
    {{ json_str('data', 'invoice_id') }} as invoice_id,
    {{ json_str('data', 'tenant_id') }} as tenant_id,
    {{ json_str('data', 'customer_id') }} as customer_id,
    {{ json_str('data', 'subscription_id') }} as subscription_id,
    lower({{ json_str('data', 'currency') }}) as currency,
    {{ json_int('data', 'amount') }} as amount,
    {{ json_int('data', 'refunded_amount') }} as refunded_amount,
    {{ json_int('data', 'credited_amount') }} as credited_amount,
    {{ json_str('data', 'settlement') }} as settlement,
    {{ json_str('data', 'origin') }} as origin,
    {{ json_str('data', 'reason') }} as reason,
    {{ json_str('data', 'refund_id') }} as refund_id,
    schema_version,
    producer,
    kafka_topic,
    kafka_partition,
    kafka_offset,
    ingested_at,
    loaded_at
from events
