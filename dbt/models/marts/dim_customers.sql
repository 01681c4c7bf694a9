{{ config(dist='customer_id', sort=['customer_id']) }}

with customer_ids as (
    select customer_id from {{ ref('stg_customers') }}
    union
    select customer_id from {{ ref('stg_subscription_events') }}
    union
    select customer_id from {{ ref('stg_payments') }}
    union
    select customer_id from {{ ref('stg_payment_accounts') }}
    union
    select customer_id from {{ ref('stg_registrations') }}
),

profile as (
    select
        *,
        row_number() over (
            partition by customer_id order by occurred_at desc, event_id
        ) as recency
    from {{ ref('stg_customers') }}
    where event_type in ('customer.created', 'customer.updated')
),

lifecycle as (
    select
        customer_id,
        min(case when event_type = 'customer.created' then occurred_at end) as created_at,
        max(case when event_type = 'customer.deleted' then occurred_at end) as deleted_at,
        max(case when event_type = 'customer.erased' then occurred_at end) as erased_at
    from {{ ref('stg_customers') }}
    group by customer_id
),

registration as (
    select
        *,
        row_number() over (partition by customer_id order by occurred_at, event_id) as seq
    from {{ ref('stg_registrations') }}
    where event_type = 'registration.completed'
),

account as (
    select
        customer_id,
        max(stripe_customer_id) as stripe_customer_id
    from {{ ref('stg_payment_accounts') }}
    group by customer_id
),

subscriptions as (
    select
        customer_id,
        min(occurred_at) as first_subscribed_at,
        count(distinct subscription_id) as subscriptions
    from {{ ref('stg_subscription_events') }}
    group by customer_id
),

payments as (
    select
        customer_id,
        min(succeeded_at) as first_paid_at,
        -- a customer pays in one currency; amounts in two are not added up
        case when count(distinct currency) = 1 then max(currency) end as currency,
        case when count(distinct currency) = 1 then sum(net_amount) end as lifetime_net_paid
    from {{ ref('fct_payments') }}
    group by customer_id
)

select
    ids.customer_id,
    coalesce(profile.tenant_id, registration.tenant_id) as tenant_id,
    -- an erased customer keeps no pseudonymous personal data either
    case when lifecycle.erased_at is null then profile.email_hash end as email_hash,
    case when lifecycle.erased_at is null then profile.phone_hash end as phone_hash,
    coalesce(profile.marketing_opt_in, registration.marketing_opt_in) as marketing_opt_in,
    case
        when lifecycle.erased_at is not null then 'erased'
        when lifecycle.deleted_at is not null then 'deleted'
        else coalesce(profile.customer_status, 'unknown')
    end as customer_status,
    coalesce(lifecycle.created_at, registration.occurred_at, subscriptions.first_subscribed_at)
        as signed_up_at,
    registration.registration_id,
    registration.plan_id as signup_plan_id,
    registration.is_trial as signed_up_with_trial,
    account.stripe_customer_id,
    subscriptions.first_subscribed_at,
    cast(coalesce(subscriptions.subscriptions, 0) as bigint) as subscriptions,
    payments.first_paid_at,
    payments.currency,
    {{ money('payments.lifetime_net_paid') }} as lifetime_net_paid,
    lifecycle.deleted_at,
    lifecycle.erased_at
from customer_ids as ids
left join profile on ids.customer_id = profile.customer_id and profile.recency = 1
left join lifecycle on ids.customer_id = lifecycle.customer_id
left join registration on ids.customer_id = registration.customer_id and registration.seq = 1
left join account on ids.customer_id = account.customer_id
left join subscriptions on ids.customer_id = subscriptions.customer_id
left join payments on ids.customer_id = payments.customer_id
where ids.customer_id is not null
