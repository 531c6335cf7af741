-- ml_spend_features: one row per customer with a completed order in the 90 days before
-- as_of, for every as_of point in as_of_grid. Only warehouse rows strictly before as_of count.
-- as_of_grid supplies as_of, as_of_epoch, since_30d and since_90d (see ml_churn_features.sql).
WITH recent AS (
    SELECT g.as_of, g.as_of_epoch, o.customer_id,
           COUNT(*) AS orders_90d,
           SUM(CASE WHEN o.placed_at >= g.since_30d THEN 1 ELSE 0 END) AS orders_30d,
           SUM(CAST(o.total_amount AS DOUBLE PRECISION)) AS spend_90d,
           SUM(CASE WHEN o.placed_at >= g.since_30d
                    THEN CAST(o.total_amount AS DOUBLE PRECISION) ELSE 0 END) AS spend_30d,
           MAX(o.placed_at) AS last_order_at
    FROM as_of_grid g
    JOIN orders o
      ON o.status = 'completed' AND o.placed_at >= g.since_90d AND o.placed_at < g.as_of
    GROUP BY g.as_of, g.as_of_epoch, o.customer_id
)
SELECT
    r.as_of,
    r.customer_id,
    r.orders_30d,
    r.orders_90d,
    r.spend_30d,
    r.spend_90d,
    r.spend_90d / r.orders_90d AS avg_order_value_90d,
    (r.as_of_epoch - unixepoch(r.last_order_at)) / 86400.0 AS days_since_last_order,
    (r.as_of_epoch - unixepoch(c.signup_at)) / 86400.0 AS tenure_days,
    c.plan
FROM recent r
JOIN customers c ON c.customer_id = r.customer_id
