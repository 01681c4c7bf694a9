{{ config(dist='customer_id', sort=['first_attempt_at']) }}

{#- One row per payment, its latest status and when each outcome happened. Amounts are in
    major units; refunds reduce net_amount. -#}

with events as (
    select
        *,
        row_number() over (
            partition by payment_id order by occurred_at desc, kafka_offset desc, event_id
        ) as recency
    from {{ ref('stg_payments') }}
),

outcomes as (
    select
        payment_id,
        min(occurred_at) as first_attempt_at,
        min(case when event_type = 'payment.succeeded' then occurred_at end) as succeeded_at,
        max(case when event_type = 'payment.failed' then occurred_at end) as last_failed_at,
        max(case when event_type = 'payment.refunded' then occurred_at end) as last_refunded_at,
        sum(case when event_type = 'payment.failed' then 1 else 0 end) as failed_attempts,
        coalesce(max(amount_refunded), 0) as amount_refunded_minor
    from events
    group by payment_id
),

subscription_payments as (
    select payment_id, max(subscription_id) as subscription_id
    from {{ ref('stg_subscription_events') }}
    where payment_id is not null
    group by payment_id
)

select
    latest.payment_id,
    latest.customer_id,
    subscription_payments.subscription_id,
    latest.payment_status,
    latest.currency,
    cast(latest.amount as numeric(18, 2)) / 100 as amount,
    cast(outcomes.amount_refunded_minor as numeric(18, 2)) / 100 as amount_refunded,
    case
        when outcomes.succeeded_at is not null
            then cast(latest.amount - outcomes.amount_refunded_minor as numeric(18, 2)) / 100
        else cast(0 as numeric(18, 2))
    end as net_amount,
    outcomes.first_attempt_at,
    outcomes.succeeded_at,
    outcomes.last_failed_at,
    outcomes.last_refunded_at,
    outcomes.failed_attempts,
    latest.failure_code,
    latest.decline_code,
    latest.stripe_payment_intent_id
from events as latest
inner join outcomes on latest.payment_id = outcomes.payment_id
left join subscription_payments on latest.payment_id = subscription_payments.payment_id
where latest.recency = 1
