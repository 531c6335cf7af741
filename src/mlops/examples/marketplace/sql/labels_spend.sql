-- Spend labels: for every as_of point in as_of_grid, each customer with a completed order in
-- the 90 days before as_of gets label = what they spend on completed orders in the 30 days
-- after as_of ([as_of, as_of + 30 d)), 0 when nothing. Only ask for points whose window has
-- closed. as_of_grid supplies as_of, since_90d and until_30d (see ml_churn_features.sql).
WITH active AS (
    SELECT DISTINCT g.as_of, g.until_30d, o.customer_id
    FROM as_of_grid g
    JOIN orders o
      ON o.status = 'completed' AND o.placed_at >= g.since_90d AND o.placed_at < g.as_of
)
SELECT
    a.as_of,
    a.customer_id,
    COALESCE((
        SELECT SUM(CAST(o.total_amount AS DOUBLE PRECISION)) FROM orders o
        WHERE o.customer_id = a.customer_id AND o.status = 'completed'
          AND o.placed_at >= a.as_of AND o.placed_at < a.until_30d
    ), 0) AS label
FROM active a
