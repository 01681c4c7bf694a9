{{ config(dist='all', sort=['month']) }}

{#- MRR per month and currency (major units) and its movements; yearly plans count /12.
    mrr = previous_mrr + new + expansion + contraction + churn + reactivation, where
    contraction and churn are negative. -#}

select
    month,
    currency,
    {{ money('sum(previous_mrr)') }} as starting_mrr,
    {{ money("sum(case when movement = 'new' then mrr_change else 0 end)") }} as new_mrr,
    {{ money("sum(case when movement = 'expansion' then mrr_change else 0 end)") }}
        as expansion_mrr,
    {{ money("sum(case when movement = 'contraction' then mrr_change else 0 end)") }}
        as contraction_mrr,
    {{ money("sum(case when movement = 'churn' then mrr_change else 0 end)") }} as churned_mrr,
    {{ money("sum(case when movement = 'reactivation' then mrr_change else 0 end)") }}
        as reactivation_mrr,
    {{ money('sum(mrr_change)') }} as net_new_mrr,
    {{ money('sum(mrr)') }} as mrr,
    cast(sum(case when mrr > 0 then 1 else 0 end) as bigint) as paying_customers,
    cast(sum(case when movement = 'new' then 1 else 0 end) as bigint) as new_customers,
    cast(sum(case when movement = 'churn' then 1 else 0 end) as bigint) as churned_customers,
    cast(sum(case when movement = 'reactivation' then 1 else 0 end) as bigint)
        as reactivated_customers
from {{ ref('int_customer_mrr_monthly') }}
group by month, currency
