{{ config(dist='all', sort=['month']) }}

{#- Churn per month and currency, against the customers paying at the start of the month
    (the previous month's end). Rates are null when nobody paid at the start. -#}

with movements as (
    select
        month,
        currency,
        sum(case when previous_mrr > 0 then 1 else 0 end) as customers_at_start,
        sum(case when movement = 'churn' then 1 else 0 end) as churned_customers,
        sum(previous_mrr) as mrr_at_start,
        sum(case when movement = 'churn' then -mrr_change else 0 end) as churned_mrr,
        sum(case when movement = 'contraction' then -mrr_change else 0 end) as contraction_mrr,
        sum(case when movement = 'expansion' then mrr_change else 0 end) as expansion_mrr
    from {{ ref('int_customer_mrr_monthly') }}
    group by month, currency
)

select
    month,
    currency,
    cast(customers_at_start as bigint) as customers_at_start,
    cast(churned_customers as bigint) as churned_customers,
    {{ money('mrr_at_start') }} as mrr_at_start,
    {{ money('churned_mrr') }} as churned_mrr,
    {{ money('contraction_mrr') }} as contraction_mrr,
    {{ money('expansion_mrr') }} as expansion_mrr,
    case
        when customers_at_start > 0 then {{ ratio('churned_customers', 'customers_at_start') }}
    end as customer_churn_rate,
    case
        when mrr_at_start > 0
            then {{ ratio('churned_mrr + contraction_mrr', 'mrr_at_start') }}
    end as gross_mrr_churn_rate,
    case
        when mrr_at_start > 0
            then {{ ratio(
                'mrr_at_start + expansion_mrr - contraction_mrr - churned_mrr', 'mrr_at_start'
            ) }}
    end as net_mrr_retention
from movements
