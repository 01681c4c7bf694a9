{{ config(dist='all', sort=['month']) }}

{#- MRR per month and currency (major units) and its movements; yearly plans count /12.
    mrr = previous_mrr + new + expansion + contraction + churn + reactivation, where
    contraction and churn are negative. -#}

select
    month,
    currency,
    sum(previous_mrr) as starting_mrr,
    sum(case when movement = 'new' then mrr_change else 0 end) as new_mrr,
    sum(case when movement = 'expansion' then mrr_change else 0 end) as expansion_mrr,
    sum(case when movement = 'contraction' then mrr_change else 0 end) as contraction_mrr,
    sum(case when movement = 'churn' then mrr_change else 0 end) as churned_mrr,
    sum(case when movement = 'reactivation' then mrr_change else 0 end) as reactivation_mrr,
    sum(mrr_change) as net_new_mrr,
    sum(mrr) as mrr,
    sum(case when mrr > 0 then 1 else 0 end) as paying_customers,
    sum(case when movement = 'new' then 1 else 0 end) as new_customers,
    sum(case when movement = 'churn' then 1 else 0 end) as churned_customers,
    sum(case when movement = 'reactivation' then 1 else 0 end) as reactivated_customers
from {{ ref('int_customer_mrr_monthly') }}
group by month, currency
