{{ config(dist='payment_id', sort=['payment_id', 'occurred_at']) }}

with {{ lake_events(event_types=['payment.succeeded', 'payment.failed', 'payment.refunded']) }}

select
    event_id,
    event_type,
    occurred_at,
    {{ json_str('data', 'payment_id') }} as payment_id,
    {{ json_str('data', 'customer_id') }} as customer_id,
    {{ json_int('data', 'amount') }} as amount,
    lower({{ json_str('data', 'currency') }}) as currency,
    {{ json_str('data', 'status') }} as payment_status,
    {{ json_str('data', 'stripe_payment_intent_id') }} as stripe_payment_intent_id,
    {{ json_str('data', 'failure_code') }} as failure_code,
    {{ json_str('data', 'decline_code') }} as decline_code,
    {{ json_str('data', 'failure_message') }} as failure_message,
    {{ json_str('data', 'refund_id') }} as refund_id,
    {{ json_int('data', 'refund_amount') }} as refund_amount,
    {{ json_int('data', 'amount_refunded') }} as amount_refunded,
    schema_version,
    producer,
    kafka_topic,
    kafka_partition,
    kafka_offset,
    ingested_at,
    loaded_at
from events
