-- ml_churn_features: one row per customer signed up before as_of, for every as_of
-- point in as_of_grid. Only warehouse rows strictly before as_of count.
--
-- as_of_grid(as_of, as_of_epoch, since_1h, since_2h, since_3h, since_5h, since_30d,
-- since_90d) is supplied by mlops: a temporary table of many points for a backfill,
-- one point for a refresh, or a one-row CTE at now() in the installed PostgreSQL view.
-- unixepoch(ts) is SQLite's built-in; mlops defines the same function on PostgreSQL.
WITH base AS (
    SELECT g.as_of, g.as_of_epoch, g.since_30d, g.since_90d,
           c.customer_id, c.plan, c.signup_at
    FROM as_of_grid g
    JOIN customers c ON c.signup_at < g.as_of
),
recent AS (
    SELECT b.as_of, b.customer_id,
           SUM(CASE WHEN o.status = 'completed' THEN 1 ELSE 0 END) AS orders_90d,
           SUM(CASE WHEN o.status = 'completed' AND o.placed_at >= b.since_30d
                    THEN 1 ELSE 0 END) AS orders_30d,
           SUM(CASE WHEN o.status = 'completed'
                    THEN CAST(o.total_amount AS DOUBLE PRECISION) ELSE 0 END) AS spend_90d,
           SUM(CASE WHEN o.status = 'cancelled' THEN 1 ELSE 0 END) AS cancelled_90d,
           COUNT(*) AS placed_90d,
           -- EXISTS, not a join: an order re-dispatched has two deliveries but is one order.
           SUM(CASE WHEN EXISTS (
                   SELECT 1 FROM deliveries d
                   WHERE d.order_id = o.order_id AND d.delivered_at < b.as_of
               ) THEN 1 ELSE 0 END) AS delivered_90d,
           SUM(CASE WHEN EXISTS (
                   SELECT 1 FROM deliveries d
                   WHERE d.order_id = o.order_id AND d.delivered_at < b.as_of
                     AND d.delivered_at > d.promised_at
               ) THEN 1 ELSE 0 END) AS late_90d
    FROM base b
    JOIN orders o
      ON o.customer_id = b.customer_id AND o.placed_at >= b.since_90d AND o.placed_at < b.as_of
    GROUP BY b.as_of, b.customer_id
)
SELECT
    b.as_of,
    b.customer_id,
    (b.as_of_epoch - unixepoch((
        SELECT MAX(o.placed_at) FROM orders o
        WHERE o.customer_id = b.customer_id AND o.placed_at < b.as_of
          AND o.status = 'completed'
    ))) / 86400.0 AS days_since_last_order,
    COALESCE(r.orders_30d, 0) AS orders_30d,
    COALESCE(r.orders_90d, 0) AS orders_90d,
    CASE WHEN r.orders_90d > 0
         THEN CAST(r.orders_30d AS DOUBLE PRECISION) * 3 / r.orders_90d END AS order_trend,
    COALESCE(r.spend_90d, 0) AS spend_90d,
    CASE WHEN r.orders_90d > 0 THEN r.spend_90d / r.orders_90d END AS avg_order_value_90d,
    CASE WHEN r.placed_90d > 0
         THEN CAST(r.cancelled_90d AS DOUBLE PRECISION) / r.placed_90d END AS cancel_rate_90d,
    CASE WHEN r.delivered_90d > 0
         THEN CAST(r.late_90d AS DOUBLE PRECISION) / r.delivered_90d END AS late_delivery_rate_90d,
    (
        SELECT COUNT(*) FROM support_tickets t
        WHERE t.customer_id = b.customer_id
          AND t.opened_at >= b.since_90d AND t.opened_at < b.as_of
    ) AS support_tickets_90d,
    (b.as_of_epoch - unixepoch(b.signup_at)) / 86400.0 AS tenure_days,
    b.plan
FROM base b
LEFT JOIN recent r ON r.as_of = b.as_of AND r.customer_id = b.customer_id
