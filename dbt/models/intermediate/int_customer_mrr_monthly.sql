{{ config(dist='customer_id', sort=['customer_id', 'month']) }}

{#- MRR per customer, currency and calendar month (the state in force at the month's end),
    from the customer's first paying month to the as_of month, and how it moved from the
    previous month: new, expansion, contraction, churn, reactivation or none.
    A subscription's MRR is net of its coupon: the discount of the invoice billing the
    period that covers the month's end (a signup's first period, a renewal or a trial
    conversion; a yearly one's /12) is taken off the plan's price. Exclusive tax is not revenue and never in MRR; inclusive tax is inside the
    plan's price, as the plan states it. -#}

with states as (
    select * from {{ ref('fct_subscriptions') }}
),

bounds as (
    select
        {{ month_start('min(valid_from)') }} as first_month,
        {{ month_start(as_of()) }} as last_month
    from states
),

months as (
    select
        cast({{ dbt.dateadd('month', 'integers.n', 'bounds.first_month') }} as date) as month,
        cast({{ dbt.dateadd('month', 'integers.n + 1', 'bounds.first_month') }} as date)
            as next_month
    from ({{ integers_0_999() }}) as integers
    cross join bounds
    where {{ dbt.dateadd('month', 'integers.n', 'bounds.first_month') }} <= bounds.last_month
),

discounted as (
    select subscription_id, period_start, period_end, discount_amount
    from {{ ref('fct_invoices') }}
    where
        invoice_kind in ('first_period', 'renewal', 'trial_conversion')
        and invoice_status <> 'void'
        and discount_amount > 0
        and period_start is not null
    -- A row that matches no subscription: DuckDB 2.0's optimizer drops every row of the
    -- left join below when this CTE is empty (a warehouse with no discount yet).
    union all
    select
        cast(null as {{ dbt.type_string() }}),
        cast(null as {{ dbt.type_timestamp() }}),
        cast(null as {{ dbt.type_timestamp() }}),
        cast(null as numeric(18, 2))
),

month_end_mrr as (
    select
        months.month,
        states.customer_id,
        states.currency,
        sum(
            case
                when states.mrr = 0 or discounted.discount_amount is null then states.mrr
                when states.billing_interval = 'year'
                    then states.mrr - {{ money('round(discounted.discount_amount / 12, 2)') }}
                else states.mrr - discounted.discount_amount
            end
        ) as mrr
    from months
    inner join states
        on states.valid_from < months.next_month
        and (states.valid_to is null or states.valid_to >= months.next_month)
    left join discounted
        on discounted.subscription_id = states.subscription_id
        and discounted.period_start < months.next_month
        and discounted.period_end >= months.next_month
    where states.currency is not null
    group by months.month, states.customer_id, states.currency
),

paying_since as (
    select customer_id, currency, min(month) as first_paid_month
    from month_end_mrr
    where mrr > 0
    group by customer_id, currency
),

grid as (
    select
        months.month,
        paying_since.customer_id,
        paying_since.currency,
        paying_since.first_paid_month,
        coalesce(month_end_mrr.mrr, 0) as mrr
    from paying_since
    inner join months on months.month >= paying_since.first_paid_month
    left join month_end_mrr
        on month_end_mrr.month = months.month
        and month_end_mrr.customer_id = paying_since.customer_id
        and month_end_mrr.currency = paying_since.currency
),

with_previous as (
    select
        *,
        coalesce(
            lag(mrr) over (partition by customer_id, currency order by month), 0
        ) as previous_mrr
    from grid
)

select
    customer_id || ':' || currency || ':' || cast(month as {{ dbt.type_string() }})
        as customer_month_id,
    month,
    customer_id,
    currency,
    first_paid_month,
    {{ dbt.datediff('first_paid_month', 'month', 'month') }} as months_since_first_paid,
    previous_mrr,
    mrr,
    mrr - previous_mrr as mrr_change,
    case
        when previous_mrr = 0 and mrr > 0 and month = first_paid_month then 'new'
        when previous_mrr = 0 and mrr > 0 then 'reactivation'
        when previous_mrr > 0 and mrr = 0 then 'churn'
        when previous_mrr > 0 and mrr > previous_mrr then 'expansion'
        when previous_mrr > 0 and mrr < previous_mrr then 'contraction'
        else 'none'
    end as movement
from with_previous
