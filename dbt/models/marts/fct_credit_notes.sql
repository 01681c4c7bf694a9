{{ config(dist='customer_id', sort=['created_at']) }}

{#- One row per credit note, from billing's credit_note.created events (a note is issued
    once; a copy of the event delivered twice is one row: the first by occurred_at).
    Amounts in major units. -#}

with ranked as (
    select
        *,
        row_number() over (
            partition by credit_note_id order by occurred_at, event_id
        ) as first_seen
    from {{ ref('stg_credit_note_events') }}
)

select
    credit_note_id,
    invoice_id,
    tenant_id,
    customer_id,
    subscription_id,
    currency,
    {{ minor_to_major('amount') }} as credit_amount,
    {{ minor_to_major('refunded_amount') }} as refunded_amount,
    {{ minor_to_major('credited_amount') }} as customer_credit_amount,
    settlement,
    origin,
    reason,
    refund_id,
    occurred_at as created_at
from ranked
where first_seen = 1
