-- Each month's MRR movements add up to the change from the previous month's MRR,
-- and the previous month's MRR is what that month ended with.
with months as (
    select
        *,
        lag(mrr) over (partition by currency order by month) as previous_month_mrr
    from {{ ref('mrr_monthly') }}
)

select *
from months
where
    abs(
        (new_mrr + expansion_mrr + contraction_mrr + churned_mrr + reactivation_mrr)
        - (mrr - starting_mrr)
    ) > 0.0001
    or abs(starting_mrr - coalesce(previous_month_mrr, 0)) > 0.0001
    or new_mrr < 0 or expansion_mrr < 0 or reactivation_mrr < 0
    or contraction_mrr > 0 or churned_mrr > 0
