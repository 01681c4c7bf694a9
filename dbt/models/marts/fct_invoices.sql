{{ config(dist='subscription_id', sort=['first_seen_at']) }}

{#- Billing's renewal invoices, as far as events tell: there are no invoice.* events yet,
    but subscription.renewed / reactivated (paid) and subscription.past_due (charge failed)
    carry the invoice_id. One row per invoice; amounts in major units. The first charge at
    signup (subscription.activated) has no invoice and is in fct_payments only. -#}

with invoice_events as (
    select
        *,
        row_number() over (
            partition by invoice_id
            order by
                case when event_type in ('subscription.renewed', 'subscription.reactivated')
                    then 0 else 1 end,
                occurred_at desc,
                event_id
        ) as paid_first
    from {{ ref('stg_subscription_events') }}
    where invoice_id is not null
),

outcomes as (
    select
        invoice_id,
        min(occurred_at) as first_seen_at,
        min(case when event_type = 'subscription.past_due' then occurred_at end) as past_due_at,
        min(
            case
                when event_type in ('subscription.renewed', 'subscription.reactivated')
                    then occurred_at
            end
        ) as paid_at,
        max(decline_code) as decline_code
    from invoice_events
    group by invoice_id
),

ended as (
    select subscription_id, min(occurred_at) as canceled_at
    from {{ ref('stg_subscription_events') }}
    where event_type = 'subscription.canceled'
    group by subscription_id
)

select
    invoice.invoice_id,
    invoice.subscription_id,
    invoice.customer_id,
    invoice.plan_id,
    case
        when outcomes.paid_at is not null then 'paid'
        when ended.canceled_at > outcomes.past_due_at then 'uncollectible'
        else 'past_due'
    end as invoice_status,
    coalesce(invoice.currency, plans.currency) as currency,
    coalesce({{ minor_to_major('invoice.amount') }}, plans.amount) as amount,
    case when outcomes.paid_at is not null then invoice.current_period_start end
        as period_start,
    case when outcomes.paid_at is not null then invoice.current_period_end end as period_end,
    invoice.payment_id,
    outcomes.first_seen_at,
    outcomes.past_due_at,
    outcomes.paid_at,
    outcomes.decline_code
from invoice_events as invoice
inner join outcomes on invoice.invoice_id = outcomes.invoice_id
left join ended on invoice.subscription_id = ended.subscription_id
-- subscription.past_due carries no amount: an invoice not yet paid is priced at its plan
left join {{ ref('dim_plans') }} as plans on invoice.plan_id = plans.plan_id
where invoice.paid_first = 1
