-- Ticket labels: for every as_of point in as_of_grid, each customer with an order placed in the
-- 90 days before as_of gets label = 1 when they open a support ticket in the 14 days after
-- as_of ([as_of, as_of + 14 d)), else 0. Only ask for points whose window has closed.
-- as_of_grid supplies as_of, since_90d and until_14d (see ml_churn_features.sql).
WITH active AS (
    SELECT DISTINCT g.as_of, g.until_14d, o.customer_id
    FROM as_of_grid g
    JOIN orders o ON o.placed_at >= g.since_90d AND o.placed_at < g.as_of
)
SELECT
    a.as_of,
    a.customer_id,
    CASE WHEN EXISTS (
        SELECT 1 FROM support_tickets t
        WHERE t.customer_id = a.customer_id
          AND t.opened_at >= a.as_of AND t.opened_at < a.until_14d
    ) THEN 1 ELSE 0 END AS label
FROM active a
