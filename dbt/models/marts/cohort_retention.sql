{{ config(dist='all', sort=['cohort_month', 'months_since_first_paid']) }}

{#- Customers grouped by the month they first paid; for each later month, how many still
    pay (logo retention) and how much of the cohort's first-month MRR they bring (NRR). -#}

with customer_months as (
    select * from {{ ref('int_customer_mrr_monthly') }}
),

cohorts as (
    select
        first_paid_month as cohort_month,
        currency,
        count(*) as cohort_customers,
        sum(mrr) as cohort_starting_mrr
    from customer_months
    where month = first_paid_month
    group by first_paid_month, currency
)

select
    customer_months.first_paid_month as cohort_month,
    customer_months.currency,
    customer_months.month,
    customer_months.months_since_first_paid,
    cast(cohorts.cohort_customers as bigint) as cohort_customers,
    cast(sum(case when customer_months.mrr > 0 then 1 else 0 end) as bigint) as active_customers,
    {{ ratio(
        'sum(case when customer_months.mrr > 0 then 1 else 0 end)', 'cohorts.cohort_customers'
    ) }} as customer_retention,
    {{ money('cohorts.cohort_starting_mrr') }} as cohort_starting_mrr,
    {{ money('sum(customer_months.mrr)') }} as mrr,
    case
        when cohorts.cohort_starting_mrr > 0
            then {{ ratio('sum(customer_months.mrr)', 'cohorts.cohort_starting_mrr') }}
    end as net_revenue_retention
from customer_months
inner join cohorts
    on customer_months.first_paid_month = cohorts.cohort_month
    and customer_months.currency = cohorts.currency
group by
    customer_months.first_paid_month,
    customer_months.currency,
    customer_months.month,
    customer_months.months_since_first_paid,
    cohorts.cohort_customers,
    cohorts.cohort_starting_mrr
