-- Churn labels: for every as_of point in as_of_grid, each customer active in the 90 days
-- before as_of (a completed order in [as_of - 90 d, as_of)) gets label = 1 (churned) when they
-- place no completed order in the 30 days after as_of ([as_of, as_of + 30 d)), else 0.
-- Only ask for points whose 30-day window has closed; a label not yet due is not a 1.
-- as_of_grid supplies as_of, since_90d and until_30d (see ml_churn_features.sql).
SELECT
    g.as_of,
    c.customer_id,
    CASE WHEN EXISTS (
        SELECT 1 FROM orders o
        WHERE o.customer_id = c.customer_id AND o.status = 'completed'
          AND o.placed_at >= g.as_of AND o.placed_at < g.until_30d
    ) THEN 0 ELSE 1 END AS label
FROM as_of_grid g
JOIN customers c ON c.signup_at < g.as_of
WHERE EXISTS (
    SELECT 1 FROM orders o
    WHERE o.customer_id = c.customer_id AND o.status = 'completed'
      AND o.placed_at >= g.since_90d AND o.placed_at < g.as_of
)
