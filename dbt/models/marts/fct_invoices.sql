{{ config(dist='customer_id', sort=['created_at']) }}

{#- One row per invoice, from billing's invoice.* events: the latest event gives the status
    and amounts (each event carries the invoice as it is after the change), the others its
    timestamps, attempts and last decline. Amounts in major units. -#}

with ranked as (
    select
        *,
        row_number() over (
            partition by invoice_id
            order by
                occurred_at desc,
                -- one transaction may emit two (a declined upgrade: failed, then voided)
                case event_type
                    when 'invoice.created' then 1
                    when 'invoice.finalized' then 2
                    when 'invoice.payment_failed' then 3
                    else 4
                end desc,
                attempt desc,
                event_id
        ) as latest_first,
        row_number() over (
            partition by invoice_id, event_type
            order by occurred_at desc, attempt desc, event_id
        ) as latest_of_type
    from {{ ref('stg_invoice_events') }}
),

history as (
    select
        invoice_id,
        min(case when event_type = 'invoice.created' then occurred_at end) as created_at,
        min(case when event_type = 'invoice.finalized' then occurred_at end) as finalized_at,
        min(case when event_type = 'invoice.payment_failed' then occurred_at end)
            as first_failed_at,
        min(case when event_type = 'invoice.paid' then occurred_at end) as paid_at,
        min(case when event_type = 'invoice.voided' then occurred_at end) as voided_at,
        min(occurred_at) as first_seen_at,
        -- one event per charge attempt: each declined one, and the paying one (an invoice
        -- paid without a charge has no payment)
        count(case when event_type = 'invoice.payment_failed' then 1 end)
        + count(case when event_type = 'invoice.paid' and payment_id is not null then 1 end)
            as attempts,
        max(
            case
                when event_type = 'invoice.payment_failed' and latest_of_type = 1
                    then decline_code
            end
        ) as decline_code,
        max(case when event_type = 'invoice.paid' then payment_id end) as payment_id,
        max(case when event_type = 'invoice.voided' then void_reason end) as void_reason
    from ranked
    group by invoice_id
)

select
    latest.invoice_id,
    latest.tenant_id,
    latest.customer_id,
    latest.subscription_id,
    latest.invoice_kind,
    latest.invoice_status,
    latest.currency,
    {{ minor_to_major('latest.subtotal') }} as subtotal_amount,
    {{ minor_to_major('latest.discount') }} as discount_amount,
    {{ minor_to_major('latest.tax') }} as tax_amount,
    latest.tax_inclusive,
    {{ minor_to_major('latest.total') }} as total_amount,
    {{ minor_to_major('latest.amount_paid') }} as amount_paid,
    {{ minor_to_major('latest.amount_due') }} as amount_due,
    history.payment_id,
    cast(history.attempts as integer) as attempts,
    history.decline_code,
    history.void_reason,
    latest.period_start,
    latest.period_end,
    coalesce(history.created_at, history.first_seen_at) as created_at,
    history.finalized_at,
    history.first_failed_at,
    history.paid_at,
    history.voided_at
from ranked as latest
inner join history on latest.invoice_id = history.invoice_id
where latest.latest_first = 1
