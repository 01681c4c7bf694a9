{{ config(
    materialized='incremental',
    unique_key='payment_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    dist='customer_id',
    sort=['first_attempt_at'],
) }}

{#- One row per payment, its latest status and when each outcome happened. Amounts are in
    major units; refunds reduce net_amount. Incremental: a run rebuilds only the payments
    with an event loaded since the last run (a payment event, or the subscription event
    that names the payment), each from its whole history. -#}

with
{%- if incremental_run() %}
changed as (
    -- >= : rows loaded in the same instant as the last run's newest are taken again
    select payment_id from {{ ref('stg_payments') }}
    where loaded_at >= (select max(loaded_at) from {{ this }})
    union
    select payment_id from {{ ref('stg_subscription_events') }}
    where payment_id is not null and loaded_at >= (select max(loaded_at) from {{ this }})
),
{%- endif %}

events as (
    select
        *,
        row_number() over (
            partition by payment_id order by occurred_at desc, kafka_offset desc, event_id
        ) as recency
    from {{ ref('stg_payments') }}
    {%- if incremental_run() %}
    where payment_id in (select payment_id from changed)
    {%- endif %}
),

outcomes as (
    select
        payment_id,
        min(occurred_at) as first_attempt_at,
        min(case when event_type = 'payment.succeeded' then occurred_at end) as succeeded_at,
        max(case when event_type = 'payment.failed' then occurred_at end) as last_failed_at,
        max(case when event_type = 'payment.refunded' then occurred_at end) as last_refunded_at,
        sum(case when event_type = 'payment.failed' then 1 else 0 end) as failed_attempts,
        coalesce(max(amount_refunded), 0) as amount_refunded_minor,
        max(loaded_at) as loaded_at
    from events
    group by payment_id
),

subscription_payments as (
    select payment_id, max(subscription_id) as subscription_id, max(loaded_at) as loaded_at
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
    {{ minor_to_major('latest.amount') }} as amount,
    {{ minor_to_major('outcomes.amount_refunded_minor') }} as amount_refunded,
    case
        when outcomes.succeeded_at is not null
            then {{ minor_to_major('latest.amount - outcomes.amount_refunded_minor') }}
        else {{ money(0) }}
    end as net_amount,
    outcomes.first_attempt_at,
    outcomes.succeeded_at,
    outcomes.last_failed_at,
    outcomes.last_refunded_at,
    cast(outcomes.failed_attempts as bigint) as failed_attempts,
    latest.failure_code,
    latest.decline_code,
    latest.stripe_payment_intent_id,
    case
        when subscription_payments.loaded_at > outcomes.loaded_at
            then subscription_payments.loaded_at
        else outcomes.loaded_at
    end as loaded_at
from events as latest
inner join outcomes on latest.payment_id = outcomes.payment_id
left join subscription_payments on latest.payment_id = subscription_payments.payment_id
where latest.recency = 1
