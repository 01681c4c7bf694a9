{{ config(dist='all') }}

{#- The latest price seen on events (created, renewed, reactivated carry the plan's amount)
    wins over the catalogue seed (a copy of the subscription service's starter plans),
    which covers plans only reached by plan changes. -#}

with observed as (
    select
        plan_id,
        amount,
        currency,
        billing_interval,
        row_number() over (partition by plan_id order by occurred_at desc, event_id) as recency
    from {{ ref('stg_subscription_events') }}
    where amount is not null
),

catalog as (
    select * from {{ ref('plan_catalog') }}
)

select
    coalesce(observed.plan_id, catalog.plan_id) as plan_id,
    catalog.plan_name,
    {{ minor_to_major('coalesce(observed.amount, catalog.amount)') }} as amount,
    coalesce(observed.currency, catalog.currency) as currency,
    coalesce(observed.billing_interval, catalog.billing_interval) as billing_interval,
    catalog.trial_days,
    {{ monthly_amount(
        'coalesce(observed.amount, catalog.amount)',
        'coalesce(observed.billing_interval, catalog.billing_interval)'
    ) }} as monthly_amount,
    case when observed.plan_id is not null then 'events' else 'catalog' end as price_source
from catalog
full outer join (select * from observed where recency = 1) as observed
    on catalog.plan_id = observed.plan_id
